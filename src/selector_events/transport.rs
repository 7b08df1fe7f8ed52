//! The socket transport (asyncio's `_SelectorSocketTransport`). Under construction.
