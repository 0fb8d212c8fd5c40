//! `gearshift-bench tuner --held-out`: the JSON report has every tuner and
//! target, the SVG is drawn, and the flags that need `--held-out` say so.

use clap::Parser;
use gearshift_bench::cli::{Cli, execute};

fn cli(args: &[&str]) -> Result<Cli, clap::Error> {
    Cli::try_parse_from(["gearshift-bench", "tuner"].iter().chain(args))
}

#[tokio::test]
async fn held_out_writes_the_json_report_and_the_worst_run_s_svg() {
    let dir = std::env::temp_dir().join(format!("gearshift-held-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (json, svg) = (dir.join("held_out.json"), dir.join("worst.svg"));
    let args = [
        "--held-out",
        "--seeds",
        "6",
        "--json",
        json.to_str().unwrap(),
        "--svg",
        svg.to_str().unwrap(),
    ];
    let text = execute(cli(&args).unwrap()).await.unwrap();
    assert!(text.contains("PASS") || text.contains("FAIL"), "{text}");
    assert!(text.contains("worst: seed 100"), "{text}");

    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(v["range"], "held-out");
    assert_eq!(v["first_seed"], 10_000);
    assert_eq!(v["scenarios"], 6);
    assert!(v["best_fixed"].as_u64().unwrap() >= 1);
    let tuners = v["tuners"].as_array().unwrap();
    // default, seed rule, 5 presets, best fixed.
    assert_eq!(tuners.len(), 8);
    assert_eq!(tuners[0]["name"], "default");
    for t in tuners {
        for key in [
            "mean",
            "median",
            "p5",
            "min",
            "runaways",
            "calls_in_retry_after",
        ] {
            assert!(t[key].is_number(), "{key} in {t}");
        }
        assert!(t.get("median_settling_s").is_some());
        assert!(!t["families"].as_array().unwrap().is_empty());
        let worst = t["worst"].as_array().unwrap();
        assert_eq!(worst.len(), 5);
        for w in worst {
            for key in ["seed", "family", "fraction", "runaway_s", "paused_s", "why"] {
                assert!(w.get(key).is_some(), "{key} in {w}");
            }
        }
        assert_eq!(t["scenarios"].as_array().unwrap().len(), 6);
    }
    let targets = v["targets"].as_array().unwrap();
    assert_eq!(targets.len(), 5 + 7);
    assert!(targets.iter().all(|t| t["pass"].is_boolean()));

    let svg = std::fs::read_to_string(&svg).unwrap();
    assert!(svg.starts_with("<svg"), "{}", &svg[..svg.len().min(200)]);
    assert!(svg.contains("<polyline"));
    assert!(svg.trim_end().ends_with("</svg>"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn training_seeds_are_labelled_and_bad_counts_are_refused() {
    let text = execute(cli(&["--held-out", "--training", "--seeds", "2"]).unwrap())
        .await
        .unwrap();
    assert!(text.contains("from seed 0 (training)"), "{text}");
    let err = execute(cli(&["--held-out", "--seeds", "0"]).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("seeds must be between 1"), "{err}");
    let err = execute(cli(&["--held-out", "--phase", "B"]).unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("--phase"), "{err}");
}

#[test]
fn training_and_svg_need_held_out() {
    assert!(cli(&["--training"]).is_err());
    assert!(cli(&["--svg", "x.svg"]).is_err());
    assert!(cli(&["--held-out", "--training", "--svg", "x.svg"]).is_ok());
}
