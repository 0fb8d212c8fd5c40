//! The summary chart of the main table: one horizontal bar per (scenario,
//! system), its length the median fraction of the scenario's limit, with a
//! whisker from the slowest to the fastest repeat.
//!
//! Drawn in pixels rather than on a plotters chart: the rows carry long
//! system names, grouped under scenario headings, which a chart's axis
//! labels cannot hold without overlapping.

use std::path::Path;

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use super::{COLORS, FONT_PX, LegendEntry, draw_err, draw_legend, label_font, legend_height};
use crate::repeat::RepeatedScenario;
use crate::report::REFERENCE_MARK;

const WIDTH: i32 = 1100;
const LABEL_PX: i32 = 400;
const ROW_PX: i32 = 20;
const HEADING_PX: i32 = 28;
const TOP_PX: i32 = 50;
const AXIS_PX: i32 = 40;
/// The right margin, which holds each row's value.
const RIGHT_PX: i32 = 80;

/// The families a system's name starts with, and their colour.
fn family(system: &str) -> (usize, &'static str) {
    const FAMILIES: [(&str, usize); 5] = [
        ("gearshift", 0),
        ("tokio inline", 1),
        ("tokio+spawn_blocking", 2),
        ("tokio+rayon", 3),
        ("sequential", 7),
    ];
    FAMILIES
        .iter()
        .find(|(prefix, _)| system.starts_with(prefix))
        .map_or((5, "other"), |(p, c)| (*c, *p))
}

/// Draws the summary of `results` to `path`.
///
/// # Errors
///
/// If the file cannot be drawn or written.
pub fn plot_summary(path: &Path, results: &[RepeatedScenario]) -> anyhow::Result<()> {
    let fractions = results.iter().flat_map(|r| {
        r.rows
            .iter()
            .map(move |row| row.items_per_s().scaled(r.limit_per_s))
    });
    let x_top = (fractions.map(|s| s.max).fold(1.0, f64::max) * 10.0).ceil() / 10.0;
    let x_top = x_top.min(2.0);
    let mut entries: Vec<LegendEntry> = Vec::new();
    for r in results {
        for row in &r.rows {
            let (c, name) = family(row.system());
            if !entries.iter().any(|e| e.label.starts_with(name)) {
                entries.push(LegendEntry {
                    label: name.to_owned(),
                    color: COLORS[c],
                    dashed: false,
                });
            }
        }
    }
    entries.push(LegendEntry {
        label: format!("{REFERENCE_MARK} the scenario's reference row (outlined)"),
        color: BLACK,
        dashed: false,
    });
    entries.push(LegendEntry {
        label: "whisker: slowest to fastest repeat".into(),
        color: BLACK,
        dashed: false,
    });
    let rows: i32 = results.iter().map(|r| r.rows.len() as i32).sum();
    let body = results.len() as i32 * HEADING_PX + rows * ROW_PX;
    let legend_px = legend_height(&entries, WIDTH);
    let height = TOP_PX + body + AXIS_PX + legend_px;
    let root = SVGBackend::new(path, (WIDTH as u32, height as u32)).into_drawing_area();
    root.fill(&WHITE).map_err(draw_err)?;
    let (x0, x1) = (LABEL_PX + 10, WIDTH - RIGHT_PX);
    let px = |f: f64| x0 + ((f.clamp(0.0, x_top) / x_top) * f64::from(x1 - x0)).round() as i32;
    let centered = |h| label_font().pos(Pos::new(h, VPos::Center));
    root.draw(&Text::new(
        "Throughput as a share of each scenario's theoretical limit (median of the repeats)",
        (WIDTH / 2, 18),
        TextStyle::from(("sans-serif", 18).into_font()).pos(Pos::new(HPos::Center, VPos::Center)),
    ))
    .map_err(draw_err)?;
    let (body_top, body_bottom) = (TOP_PX, TOP_PX + body);
    // Grid and axis: every 0.2 of the limit, the limit itself in black.
    let mut tick = 0.0;
    while tick <= x_top + 1e-9 {
        let x = px(tick);
        let style = if (tick - 1.0).abs() < 1e-9 {
            BLACK.stroke_width(2)
        } else {
            RGBColor(220, 220, 220).stroke_width(1)
        };
        root.draw(&PathElement::new(
            vec![(x, body_top - 6), (x, body_bottom)],
            style,
        ))
        .map_err(draw_err)?;
        for y in [body_top - 14, body_bottom + 12] {
            root.draw(&Text::new(
                format!("{:.0}%", tick * 100.0),
                (x, y),
                centered(HPos::Center),
            ))
            .map_err(draw_err)?;
        }
        tick += 0.2;
    }
    root.draw(&Text::new(
        "median",
        (WIDTH - 10, body_top - 14),
        centered(HPos::Right),
    ))
    .map_err(draw_err)?;
    root.draw(&Text::new(
        "share of the scenario's limit (100% = the best any system can do)",
        ((x0 + x1) / 2, body_bottom + 30),
        centered(HPos::Center),
    ))
    .map_err(draw_err)?;
    let mut y = body_top;
    for r in results {
        root.draw(&Text::new(
            format!("{}: limit {:.0} items/s", r.scenario, r.limit_per_s),
            (8, y + HEADING_PX / 2 + 2),
            TextStyle::from(
                ("sans-serif", FONT_PX + 1)
                    .into_font()
                    .style(FontStyle::Bold),
            )
            .pos(Pos::new(HPos::Left, VPos::Center)),
        ))
        .map_err(draw_err)?;
        y += HEADING_PX;
        for row in &r.rows {
            let reference = row.system() == r.reference;
            let s = row.items_per_s().scaled(r.limit_per_s);
            let mid = y + ROW_PX / 2;
            let mark = if reference { REFERENCE_MARK } else { " " };
            root.draw(&Text::new(
                format!("{mark} {}", row.system()),
                (LABEL_PX, mid),
                centered(HPos::Right),
            ))
            .map_err(draw_err)?;
            let color = COLORS[family(row.system()).0];
            let bar = [(x0, mid - 6), (px(s.median).max(x0 + 1), mid + 6)];
            root.draw(&Rectangle::new(bar, color.mix(0.85).filled()))
                .map_err(draw_err)?;
            if reference {
                root.draw(&Rectangle::new(bar, BLACK.stroke_width(2)))
                    .map_err(draw_err)?;
            }
            let (lo, hi) = (px(s.min), px(s.max));
            let whisker = BLACK.stroke_width(1);
            root.draw(&PathElement::new(vec![(lo, mid), (hi, mid)], whisker))
                .map_err(draw_err)?;
            for x in [lo, hi] {
                root.draw(&PathElement::new(vec![(x, mid - 4), (x, mid + 4)], whisker))
                    .map_err(draw_err)?;
            }
            // The value in a column of its own, right of the plot, where
            // no bar, whisker or grid line can cross it.
            root.draw(&Text::new(
                format!("{:.0}%", 100.0 * s.median),
                (WIDTH - 10, mid),
                centered(HPos::Right),
            ))
            .map_err(draw_err)?;
            y += ROW_PX;
        }
    }
    let (_, legend_area) = root.split_vertically((height - legend_px) as u32);
    draw_legend(&legend_area, &entries)?;
    root.present().map_err(draw_err)?;
    Ok(())
}
