//! `--out DIR` and `--svg FILE`: SVG plots with plotters.

use std::path::Path;

use plotters::prelude::*;

use crate::scenario::ScenarioResult;

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Throughput against agents per core, one line per series, with the
/// scenario's limit as a dashed line.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_sweep(
    path: &Path,
    title: &str,
    series: &[(String, Vec<(f64, f64)>)],
    limit: f64,
) -> anyhow::Result<()> {
    let x_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.0))
        .fold(1.0, f64::max);
    let y_max = series
        .iter()
        .flat_map(|(_, p)| p.iter().map(|x| x.1))
        .fold(limit, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.05, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("agents per core")
        .y_desc("items/s")
        .draw()
        .map_err(draw_err)?;
    chart
        .draw_series(DashedLineSeries::new(
            vec![(0.0, limit), (x_max * 1.05, limit)],
            6,
            4,
            BLACK.stroke_width(1),
        ))
        .map_err(draw_err)?
        .label(format!("theoretical limit {limit:.0}/s"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK));
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err)?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// Throughput over time of every system of a scenario, with its marked
/// moments (phase change, preset switch) as vertical lines.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_timeline(path: &Path, result: &ScenarioResult) -> anyhow::Result<()> {
    let x_max = result
        .rows
        .iter()
        .map(|r| r.elapsed.as_secs_f64())
        .fold(0.1, f64::max);
    let y_max = result
        .rows
        .iter()
        .flat_map(|r| r.timeline.iter().map(|x| x.1))
        .fold(1.0, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{}: throughput over time", result.scenario),
            ("sans-serif", 20),
        )
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max * 1.02, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc("items/s")
        .draw()
        .map_err(draw_err)?;
    for (i, row) in result.rows.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                row.timeline.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?
            .label(row.system.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
        for (t, label) in &row.events {
            let dashed = label.starts_with("switch");
            let style = color.stroke_width(if dashed { 2 } else { 1 });
            chart
                .draw_series(DashedLineSeries::new(
                    vec![(*t, 0.0), (*t, y_max)],
                    if dashed { 8 } else { 2 },
                    4,
                    style,
                ))
                .map_err(draw_err)?;
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (*t, y_max * (0.95 - 0.05 * i as f64)),
                    ("sans-serif", 12).into_font().color(&color),
                )))
                .map_err(draw_err)?;
        }
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// A named line: its label and its (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Two panels over the same time axis, one line per series: the upper
/// (say, calls in flight) on a log scale, the lower (say, items/s) linear.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_two_panels(
    path: &Path,
    title: &str,
    (upper_desc, upper): (&str, &[Series]),
    (lower_desc, lower): (&str, &[Series]),
) -> anyhow::Result<()> {
    let points = |s: &[(String, Vec<(f64, f64)>)]| -> Vec<(f64, f64)> {
        s.iter().flat_map(|(_, p)| p.iter().copied()).collect()
    };
    let (up, low) = (points(upper), points(lower));
    let x_max = up.iter().chain(&low).map(|p| p.0).fold(1.0, f64::max);
    let up_max = up.iter().map(|p| p.1).fold(2.0, f64::max) * 1.5;
    let low_max = low.iter().map(|p| p.1).fold(1.0, f64::max) * 1.1;
    let root = SVGBackend::new(path, (900, 700)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(draw_err)?;
    let (top, bottom) = root.split_vertically(340);
    let mut chart = ChartBuilder::on(&top)
        .margin(10)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, (1.0..up_max).log_scale())
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .y_desc(upper_desc)
        .draw()
        .map_err(draw_err)?;
    draw_lines(&mut chart, upper)?;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(10)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..low_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("seconds")
        .y_desc(lower_desc)
        .draw()
        .map_err(draw_err)?;
    draw_lines(&mut chart, lower)?;
    root.present().map_err(draw_err)?;
    Ok(())
}

/// One line per series with a legend; every other series dashed-looking
/// (thin), so a measured line and its reference pair up by colour.
fn draw_lines<'a, DB, X, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<X, Y>>,
    series: &[(String, Vec<(f64, f64)>)],
) -> anyhow::Result<()>
where
    DB: DrawingBackend + 'a,
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    for (i, (name, points)) in series.iter().enumerate() {
        let color = COLORS[(i / 2) % COLORS.len()];
        let width = if i % 2 == 0 { 2 } else { 1 };
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(width),
            ))
            .map_err(draw_err)?
            .label(name.clone())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperRight)
        .draw()
        .map_err(draw_err)?;
    Ok(())
}
