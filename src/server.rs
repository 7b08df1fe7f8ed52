//! Servers and connections (asyncio's `base_events.Server`, `create_connection`, `create_server`). Under construction.
