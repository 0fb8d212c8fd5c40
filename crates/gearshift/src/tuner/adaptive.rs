//! The adaptive tuner (placeholder: being written).
