//! SVG plots with plotters: the summary of the main table, the
//! morning_evening timeline, the sweep, and the held-out run's two panels.
//!
//! Every label is placed in pixels by [`layout`] first (legends go below
//! the plot, never over it), and every y axis is scaled to the figures
//! that matter, not to a one-off spike.

mod layout;
mod summary;
mod sweep;
mod timeline;
mod two_panels;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

pub use layout::{flow, lanes, nice_ceiling, quantile, text_width};
pub use summary::plot_summary;
pub use sweep::{SweepPlot, plot_sweep};
pub use timeline::plot_timeline;
pub use two_panels::{Series, plot_two_panels};

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

/// Font size of labels and legends, px.
const FONT_PX: u32 = 13;

fn draw_err(e: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("plot: {e}")
}

/// One entry of a legend drawn below a plot.
#[derive(Debug, Clone)]
struct LegendEntry {
    label: String,
    color: RGBColor,
    dashed: bool,
}

/// Height in pixels a legend of `entries` needs in `width` pixels.
fn legend_height(entries: &[LegendEntry], width: i32) -> i32 {
    let rows = place_legend(entries, width)
        .iter()
        .map(|p| p.1)
        .max()
        .map_or(0, |r| r + 1);
    rows as i32 * LEGEND_ROW_PX + 8
}

const LEGEND_ROW_PX: i32 = 20;
const LEGEND_SAMPLE_PX: i32 = 26;

fn place_legend(entries: &[LegendEntry], width: i32) -> Vec<(i32, usize)> {
    let widths: Vec<i32> = entries
        .iter()
        .map(|e| LEGEND_SAMPLE_PX + 6 + text_width(&e.label, FONT_PX))
        .collect();
    flow(&widths, width - 20, 24)
}

/// Draws `entries` in rows on `area`, left to right.
fn draw_legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    entries: &[LegendEntry],
) -> anyhow::Result<()> {
    let width = area.dim_in_pixel().0 as i32;
    for (e, (x, row)) in entries.iter().zip(place_legend(entries, width)) {
        let (x, y) = (x + 10, row as i32 * LEGEND_ROW_PX + LEGEND_ROW_PX / 2 + 4);
        let style = e.color.stroke_width(2);
        if e.dashed {
            for seg in [(0, 8), (12, 20), (24, 26)] {
                area.draw(&PathElement::new(
                    vec![(x + seg.0, y), (x + seg.1, y)],
                    style,
                ))
                .map_err(draw_err)?;
            }
        } else {
            area.draw(&PathElement::new(
                vec![(x, y), (x + LEGEND_SAMPLE_PX, y)],
                style,
            ))
            .map_err(draw_err)?;
        }
        area.draw(&Text::new(
            e.label.clone(),
            (x + LEGEND_SAMPLE_PX + 6, y),
            label_font().pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_err)?;
    }
    Ok(())
}

fn label_font() -> TextStyle<'static> {
    ("sans-serif", FONT_PX).into_font().color(&BLACK)
}
