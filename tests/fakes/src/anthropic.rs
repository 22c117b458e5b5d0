//! Anthropic Messages API fake (placeholder; being written).
