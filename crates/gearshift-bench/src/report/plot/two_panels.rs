//! Two panels over one time axis (`tuner --held-out --svg FILE`).

use std::path::Path;

use plotters::prelude::*;

use super::{COLORS, draw_err};

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
