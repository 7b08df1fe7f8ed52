//! Streams (asyncio's `streams.py`). Under construction.
