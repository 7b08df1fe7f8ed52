//! Unix-socket connections and servers (asyncio's `unix_events.py`). Under construction.
