//! `sweep`: throughput against agents per core, with the limit, the API's
//! capacity and what gearshift does with nothing set.

use std::path::Path;

use plotters::prelude::*;

use super::{COLORS, LegendEntry, draw_err, draw_legend, legend_height, nice_ceiling};

/// What a sweep plot shows.
#[derive(Debug, Clone)]
pub struct SweepPlot<'a> {
    /// The title.
    pub title: &'a str,
    /// (name, [(agents per core, items/s)]) per line.
    pub series: &'a [(String, Vec<(f64, f64)>)],
    /// The scenario's theoretical limit, items/s.
    pub limit: f64,
    /// The API's capacity in agents per core (`capacity / cores`), drawn
    /// as a vertical line.
    pub capacity_per_core: Option<f64>,
    /// The default controller's items/s (nothing set), drawn as a
    /// horizontal line.
    pub default_controller: Option<f64>,
}

/// Draws `plot` to `path`.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_sweep(path: &Path, plot: &SweepPlot<'_>) -> anyhow::Result<()> {
    let points = plot.series.iter().flat_map(|(_, p)| p.iter());
    let x_max = points
        .clone()
        .map(|p| p.0)
        .chain(plot.capacity_per_core)
        .fold(1.0, f64::max)
        * 1.05;
    let y_max = nice_ceiling(
        points
            .map(|p| p.1)
            .chain(plot.default_controller)
            .fold(plot.limit, f64::max)
            * 1.1,
    );
    let grey = RGBColor(90, 90, 90);
    let mut entries: Vec<LegendEntry> = plot
        .series
        .iter()
        .enumerate()
        .map(|(i, (name, _))| LegendEntry {
            label: name.clone(),
            color: COLORS[i % COLORS.len()],
            dashed: false,
        })
        .collect();
    entries.push(LegendEntry {
        label: format!("theoretical limit {:.0}/s", plot.limit),
        color: BLACK,
        dashed: true,
    });
    if let Some(c) = plot.capacity_per_core {
        entries.push(LegendEntry {
            label: format!("API capacity ({c} agents per core)"),
            color: grey,
            dashed: true,
        });
    }
    if let Some(d) = plot.default_controller {
        entries.push(LegendEntry {
            label: format!("gearshift, nothing set (default controller): {d:.0}/s"),
            color: COLORS[4],
            dashed: true,
        });
    }
    let (width, height) = (1000u32, 560u32);
    let legend_px = legend_height(&entries, width as i32);
    let root = SVGBackend::new(path, (width, height + legend_px as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (top, bottom) = root.split_vertically(height);
    let mut chart = ChartBuilder::on(&top)
        .caption(plot.title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)
        .map_err(draw_err)?;
    chart
        .configure_mesh()
        .x_desc("agents per core (agents = this x cores; the baseline's C the same)")
        .y_desc("items/s")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .light_line_style(RGBColor(240, 240, 240))
        .draw()
        .map_err(draw_err)?;
    let dashed = |pts: Vec<(f64, f64)>, color: RGBColor| {
        DashedLineSeries::new(pts, 6, 4, color.stroke_width(1))
    };
    chart
        .draw_series(dashed(vec![(0.0, plot.limit), (x_max, plot.limit)], BLACK))
        .map_err(draw_err)?;
    if let Some(c) = plot.capacity_per_core {
        chart
            .draw_series(dashed(vec![(c, 0.0), (c, y_max)], grey))
            .map_err(draw_err)?;
    }
    if let Some(d) = plot.default_controller {
        chart
            .draw_series(DashedLineSeries::new(
                vec![(0.0, d), (x_max, d)],
                10,
                5,
                COLORS[4].stroke_width(2),
            ))
            .map_err(draw_err)?;
    }
    for (i, (_, points)) in plot.series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        chart
            .draw_series(LineSeries::new(
                points.iter().copied(),
                color.stroke_width(2),
            ))
            .map_err(draw_err)?;
        chart
            .draw_series(points.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(draw_err)?;
    }
    draw_legend(&bottom, &entries)?;
    root.present().map_err(draw_err)?;
    Ok(())
}
