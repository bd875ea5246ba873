//! Network I/O (placeholder until the net module lands).
