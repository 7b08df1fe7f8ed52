//! A reader on a fake transport that records read flow control: shared by the
//! `StreamReader` tests fed by hand (`test_streams.rs`, `test_streams_fidelity.rs`).
#![allow(dead_code)]

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use asyncio::{
    BaseProtocol, BaseTransport, ExtraInfo, ReadTransport, StreamReader, StreamReaderProtocol,
    Transport, WriteTransport,
};

/// A transport that records read flow control and nothing else.
#[derive(Default)]
pub struct FakeTransport {
    pub paused: Cell<bool>,
    pub calls: RefCell<Vec<&'static str>>,
}

impl BaseTransport for FakeTransport {
    fn close(&self) {}
    fn is_closing(&self) -> bool {
        false
    }
    fn get_extra_info(&self, _name: &str) -> Option<ExtraInfo> {
        None
    }
}

impl ReadTransport for FakeTransport {
    fn is_reading(&self) -> bool {
        !self.paused.get()
    }
    fn pause_reading(&self) {
        self.paused.set(true);
        self.calls.borrow_mut().push("pause");
    }
    fn resume_reading(&self) {
        self.paused.set(false);
        self.calls.borrow_mut().push("resume");
    }
}

impl WriteTransport for FakeTransport {
    fn write(&self, _data: &[u8]) -> asyncio::Result<()> {
        Ok(())
    }
    fn writelines(&self, _bufs: &[&[u8]]) -> asyncio::Result<()> {
        Ok(())
    }
    fn write_eof(&self) -> asyncio::Result<()> {
        Ok(())
    }
    fn can_write_eof(&self) -> bool {
        true
    }
    fn abort(&self) {}
    fn get_write_buffer_size(&self) -> usize {
        0
    }
    fn get_write_buffer_limits(&self) -> (usize, usize) {
        (0, 0)
    }
    fn set_write_buffer_limits(&self, _h: Option<usize>, _l: Option<usize>) -> asyncio::Result<()> {
        Ok(())
    }
}

impl Transport for FakeTransport {}

/// A reader with `limit`, its protocol (the feeder: a read borrows the reader), and
/// a fake transport attached through `connection_made`.
pub fn with_transport(limit: usize) -> (StreamReader, Rc<StreamReaderProtocol>, Rc<FakeTransport>) {
    let r = StreamReader::with_limit(limit).unwrap();
    let p = StreamReaderProtocol::new(&r);
    let t = Rc::new(FakeTransport::default());
    let dyn_t: Rc<dyn Transport> = t.clone();
    p.connection_made(dyn_t);
    (r, p, t)
}
