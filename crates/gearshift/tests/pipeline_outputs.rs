//! Outputs as a blocking iterator.

use gearshift::{Pipeline, StageError};

#[test]
fn outcomes_can_be_read_from_a_plain_thread() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (handle, outcomes) = rt.block_on(async {
        Pipeline::from_iter(0..500u64)
            .io(|x| async move { Ok::<_, StageError>(x) })
            .cpu(|x| x * 3)
            .spawn_stream()
            .unwrap()
    });
    let reader = std::thread::spawn(move || {
        outcomes
            .into_blocking_iter()
            .filter_map(|o| o.ok())
            .sum::<u64>()
    });
    assert_eq!(reader.join().unwrap(), 3 * (0..500u64).sum::<u64>());
    assert_eq!(rt.block_on(handle.join()).ok, 500);
}
