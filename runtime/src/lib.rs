//! Plan execution backends.
