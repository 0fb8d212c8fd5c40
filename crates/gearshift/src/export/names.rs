//! The metric names, their units and help texts, in one place, so that the
//! table in the module docs, the publisher and the tests agree.

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

// Pipeline-wide.
pub(crate) const ITEMS_TAKEN: &str = "gearshift_items_taken_total";
pub(crate) const ITEMS_OK: &str = "gearshift_items_ok_total";
pub(crate) const ITEMS_FAILED: &str = "gearshift_items_failed_total";
pub(crate) const ITEMS_CANCELLED: &str = "gearshift_items_cancelled_total";
pub(crate) const ITEMS_IN_FLIGHT: &str = "gearshift_items_in_flight";
pub(crate) const ITEM_LATENCY: &str = "gearshift_item_latency_seconds";

// Per stage (label `stage`).
pub(crate) const STAGE_IN: &str = "gearshift_stage_items_in_total";
pub(crate) const STAGE_OUT: &str = "gearshift_stage_items_out_total";
pub(crate) const STAGE_FAILED: &str = "gearshift_stage_items_failed_total";
pub(crate) const STAGE_CANCELLED: &str = "gearshift_stage_items_cancelled_total";
pub(crate) const STAGE_IN_FLIGHT: &str = "gearshift_stage_items_in_flight";
pub(crate) const STAGE_ATTEMPTS: &str = "gearshift_stage_attempts_total";
pub(crate) const STAGE_RETRIES: &str = "gearshift_stage_retries_total";
pub(crate) const STAGE_ERRORS: &str = "gearshift_stage_errors_total";
pub(crate) const STAGE_QUEUE: &str = "gearshift_stage_queue_length";
pub(crate) const STAGE_QUEUE_CAPACITY: &str = "gearshift_stage_queue_capacity";
pub(crate) const STAGE_BLOCKED_PUT: &str = "gearshift_stage_blocked_put_seconds";
pub(crate) const STAGE_BLOCKED_GET: &str = "gearshift_stage_blocked_get_seconds";
pub(crate) const STAGE_BUSY: &str = "gearshift_stage_busy_ratio";
pub(crate) const STAGE_AGENTS: &str = "gearshift_stage_agents";
pub(crate) const STAGE_AGENTS_TARGET: &str = "gearshift_stage_agents_target";
pub(crate) const STAGE_WORKERS: &str = "gearshift_stage_workers";
pub(crate) const STAGE_PERMITS: &str = "gearshift_stage_permits";
pub(crate) const STAGE_PERMITS_IN_USE: &str = "gearshift_stage_permits_in_use";
pub(crate) const STAGE_LATENCY: &str = "gearshift_stage_latency_seconds";

// Per API budget (label `api`).
pub(crate) const API_CALLS: &str = "gearshift_api_calls_total";
pub(crate) const API_CALLS_OK: &str = "gearshift_api_calls_ok_total";
pub(crate) const API_THROTTLED: &str = "gearshift_api_throttled_total";
pub(crate) const API_TIMEOUTS: &str = "gearshift_api_timeouts_total";
pub(crate) const API_ERRORS: &str = "gearshift_api_errors_total";
pub(crate) const API_IN_FLIGHT: &str = "gearshift_api_in_flight";
pub(crate) const API_IN_FLIGHT_PEAK: &str = "gearshift_api_in_flight_peak";
pub(crate) const API_PERMITS: &str = "gearshift_api_permits";
pub(crate) const API_RATE_LIMIT: &str = "gearshift_api_rate_limit_per_second";
pub(crate) const API_PAUSED: &str = "gearshift_api_paused_seconds";
pub(crate) const API_LATENCY: &str = "gearshift_api_latency_seconds";
pub(crate) const TUNER_DECISIONS: &str = "gearshift_tuner_decisions_total";

/// Gives every metric its unit and help text (the `# HELP` line of a
/// Prometheus scrape), once per recorder.
pub(crate) fn describe() {
    use Unit::{Count, Seconds};
    describe_counter!(ITEMS_TAKEN, Count, "Items taken from the source.");
    describe_counter!(ITEMS_OK, Count, "Items that ended as Ok.");
    describe_counter!(
        ITEMS_FAILED,
        Count,
        "Items that ended as Failed, by error kind."
    );
    describe_counter!(ITEMS_CANCELLED, Count, "Items that ended as Cancelled.");
    describe_gauge!(
        ITEMS_IN_FLIGHT,
        Count,
        "Items taken that have no outcome yet."
    );
    describe_histogram!(
        ITEM_LATENCY,
        Seconds,
        "Latency of successful items, first stage to outcome."
    );

    describe_counter!(STAGE_IN, Count, "Items the stage took from its input.");
    describe_counter!(STAGE_OUT, Count, "Items the stage passed on.");
    describe_counter!(STAGE_FAILED, Count, "Items the stage ended as Failed.");
    describe_counter!(
        STAGE_CANCELLED,
        Count,
        "Items the stage ended as Cancelled."
    );
    describe_gauge!(
        STAGE_IN_FLIGHT,
        Count,
        "Items taken by the stage, not yet passed on or ended."
    );
    describe_counter!(
        STAGE_ATTEMPTS,
        Count,
        "Calls made, retries included (IO); batches run (CPU)."
    );
    describe_counter!(STAGE_RETRIES, Count, "Calls retried (IO).");
    describe_counter!(STAGE_ERRORS, Count, "Failed attempts, by error kind.");
    describe_gauge!(
        STAGE_QUEUE,
        Count,
        "Items waiting in the stage's input now."
    );
    describe_gauge!(
        STAGE_QUEUE_CAPACITY,
        Count,
        "Capacity of the stage's input."
    );
    describe_gauge!(
        STAGE_BLOCKED_PUT,
        Seconds,
        "Cumulative time blocked on a full output (only grows: take rate())."
    );
    describe_gauge!(
        STAGE_BLOCKED_GET,
        Seconds,
        "Cumulative time waiting for input (only grows: take rate())."
    );
    describe_gauge!(
        STAGE_BUSY,
        "Share of the stage's capacity used over the run, 0 to 1."
    );
    describe_gauge!(STAGE_AGENTS, Count, "Agents alive (IO stages).");
    describe_gauge!(STAGE_AGENTS_TARGET, Count, "Agents asked for (IO stages).");
    describe_gauge!(STAGE_WORKERS, Count, "Workers (CPU stages).");
    describe_gauge!(
        STAGE_PERMITS,
        Count,
        "API permits (IO) or batch slots (CPU)."
    );
    describe_gauge!(
        STAGE_PERMITS_IN_USE,
        Count,
        "Calls in flight (IO) or batch slots taken (CPU)."
    );
    describe_histogram!(
        STAGE_LATENCY,
        Seconds,
        "Latency of successful calls (IO) or per-item run time (CPU)."
    );

    describe_counter!(API_CALLS, Count, "Calls made to the API, retries included.");
    describe_counter!(API_CALLS_OK, Count, "Calls answered successfully.");
    describe_counter!(
        API_THROTTLED,
        Count,
        "Attempts the API throttled (429, or 503 with Retry-After)."
    );
    describe_counter!(API_TIMEOUTS, Count, "Attempts that timed out.");
    describe_counter!(API_ERRORS, Count, "Failed attempts, by error kind.");
    describe_gauge!(API_IN_FLIGHT, Count, "Calls in flight now.");
    describe_gauge!(
        API_IN_FLIGHT_PEAK,
        Count,
        "Most calls in flight at once over the last 60 s."
    );
    describe_gauge!(
        API_PERMITS,
        Count,
        "The budget's limit on calls in flight (absent: none)."
    );
    describe_gauge!(
        API_RATE_LIMIT,
        "Calls per second allowed (absent: no rate limit)."
    );
    describe_gauge!(
        API_PAUSED,
        Seconds,
        "Cumulative wall time paused by Retry-After (only grows: take rate())."
    );
    describe_histogram!(API_LATENCY, Seconds, "Latency of successful calls.");
    describe_counter!(
        TUNER_DECISIONS,
        Count,
        "Controller decisions applied, by direction (up, down, mixed, same)."
    );
}
