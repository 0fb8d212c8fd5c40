//! Why a cluster budget could not start.

/// Why [`ClusterBudget::connect`](super::ClusterBudget::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BudgetError {
    /// A setting or name is out of range.
    #[error("{field} must be {rule}, got {value}")]
    Config {
        /// The setting.
        field: &'static str,
        /// What it must be.
        rule: &'static str,
        /// What it was.
        value: String,
    },
    /// The key-value bucket could not be opened.
    #[error("cluster budget: {0}")]
    Nats(#[from] crate::Error),
}
