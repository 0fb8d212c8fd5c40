//! Throughput over time of every system of a scenario (the median repeat of
//! each), with the marked moments (phase change, preset switch).

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{
    COLORS, FONT_PX, LegendEntry, draw_err, draw_legend, lanes, legend_height, nice_ceiling,
    quantile, text_width,
};
use crate::repeat::RepeatedScenario;

/// The y axis reaches this quantile of every plotted point (times 1.2), so
/// the one-bucket burst of a start-up does not squash the other lines.
const Y_QUANTILE: f64 = 0.95;

/// Plots `result`'s timelines, with each phase's limit (`phase_limits`,
/// items/s) as a dashed grey line.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_timeline(
    path: &Path,
    result: &RepeatedScenario,
    phase_limits: &[f64],
) -> anyhow::Result<()> {
    let runs: Vec<_> = result.rows.iter().map(|r| r.median_run()).collect();
    let x_max = runs
        .iter()
        .map(|r| r.elapsed.as_secs_f64())
        .fold(0.1, f64::max)
        * 1.02;
    let points: Vec<f64> = runs
        .iter()
        .flat_map(|r| r.timeline.iter().map(|p| p.1))
        .collect();
    let finite_limits = phase_limits.iter().copied().filter(|l| l.is_finite());
    let y_max = nice_ceiling(
        finite_limits
            .clone()
            .fold(quantile(&points, Y_QUANTILE), f64::max)
            * 1.2,
    );
    let clipped = points.iter().filter(|&&p| p > y_max).count();

    let mut entries: Vec<LegendEntry> = result
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| LegendEntry {
            label: if r.system() == result.reference {
                format!("{} (reference)", r.system())
            } else {
                r.system().to_owned()
            },
            color: COLORS[i % COLORS.len()],
            dashed: false,
        })
        .collect();
    for (i, l) in finite_limits.clone().enumerate() {
        entries.push(LegendEntry {
            label: format!("phase {} limit {l:.0}/s", i + 1),
            color: RGBColor(90, 90, 90),
            dashed: true,
        });
    }
    let (width, height) = (1000u32, 600u32);
    let legend_px = legend_height(&entries, width as i32);
    let root = SVGBackend::new(path, (width, height + legend_px as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (top, bottom) = root.split_vertically(height);
    let subtitle = if clipped > 0 {
        let peaks = if clipped == 1 {
            "1 brief peak above it is".to_owned()
        } else {
            format!("{clipped} brief peaks above it are")
        };
        format!("median repeat of each system; y axis to the 95th percentile, {peaks} cut off")
    } else {
        "median repeat of each system".to_owned()
    };
    let top = top
        .titled(
            &format!("{}: throughput over time", result.scenario),
            ("sans-serif", 20),
        )
        .map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&top)
        .caption(subtitle, ("sans-serif", FONT_PX))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds since the row started")
        .y_desc("items/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(draw_err)?;
    for l in finite_limits {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, l), (x_max, l)],
                6,
                4,
                RGBColor(90, 90, 90).stroke_width(1),
            ))
            .map_err(draw_err)?;
    }
    let mut labels = Vec::new();
    for (i, run) in runs.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let line: Vec<(f64, f64)> = run
            .timeline
            .iter()
            .map(|&(x, y)| (x, y.min(y_max)))
            .collect();
        chart
            .draw_series(LineSeries::new(line, color.stroke_width(2)))
            .map_err(draw_err)?;
        for (t, label) in &run.events {
            let dashed = label.starts_with("switch") || label.contains("preset");
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(*t, 0.0), (*t, y_max)],
                    if dashed { 8 } else { 3 },
                    4,
                    color.stroke_width(1),
                ))
                .map_err(draw_err)?;
            labels.push((chart.backend_coord(&(*t, y_max)), label.clone(), color));
        }
    }
    // Labels right of their line (left of it near the right edge), stacked
    // in lanes from the top so none touches another.
    let right = chart.plotting_area().get_pixel_range().0.end;
    let spans: Vec<(i32, i32)> = labels
        .iter()
        .map(|((x, _), l, _)| {
            let w = text_width(l, FONT_PX);
            let start = if x + 3 + w > right { x - 3 - w } else { x + 3 };
            (start, start + w)
        })
        .collect();
    for ((((_, top_y), label, color), lane), (start, _)) in
        labels.iter().zip(lanes(&spans, 6)).zip(&spans)
    {
        root.draw(&Text::new(
            label.clone(),
            (*start, top_y + 4 + lane as i32 * (FONT_PX as i32 + 4)),
            ("sans-serif", FONT_PX)
                .into_font()
                .color(color)
                .pos(Pos::new(HPos::Left, VPos::Top)),
        ))
        .map_err(draw_err)?;
    }
    draw_legend(&bottom, &entries)?;
    root.present().map_err(draw_err)?;
    Ok(())
}
