//! OpenAI Responses API fake (placeholder; being written).
