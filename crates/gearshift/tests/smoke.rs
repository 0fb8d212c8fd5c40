use gearshift::{Pipeline, StageError};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn io_then_cpu_delivers_every_item_once() {
    let (outcomes, report) = Pipeline::from_iter(0..1000u64)
        .io(|id| async move { Ok::<_, StageError>(id * 2) })
        .cpu(|x| x + 1)
        .collect()
        .await
        .unwrap();
    let mut seen = vec![0u8; 1000];
    for o in &outcomes {
        seen[o.id() as usize] += 1;
    }
    assert!(seen.iter().all(|&n| n == 1));
    assert_eq!(report.ok, 1000);
    println!("{report}");
}
