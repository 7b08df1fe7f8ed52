//! `TaskGroup` (asyncio's `taskgroups.py`). Under construction.
