//! The HTTP fetcher (placeholder: being written).
