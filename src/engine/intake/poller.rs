//! REST polling (placeholder until written).
