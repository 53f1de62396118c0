//! Alert lifecycle (placeholder while the rules are built).
