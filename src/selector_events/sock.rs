//! Low-level socket coroutines (`sock_recv`, `sock_sendall`, ...). Under construction.
