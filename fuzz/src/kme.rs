//! The in-process KME (being written).
