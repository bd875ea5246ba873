//! The sans-IO protocol core (placeholder until it lands).
