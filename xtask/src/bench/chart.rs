//! docs/benchmarks.png: the median overhead per workload, one bar per kernel, with the
//! rounds' range as a whisker and the 2% target as a line.

use std::path::Path;

use anyhow::{anyhow, Context as _, Result};
use plotters::{
    prelude::*,
    style::text_anchor::{HPos, Pos, VPos},
};

use super::{
    report::{KernelSummary, TARGET_OVERHEAD},
    Results,
};

/// Debian's fonts-dejavu-core (installed by `cargo xtask setup`).
const FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Wide enough for six workloads' names under their bars.
const SIZE: (u32, u32) = (1200, 520);
const COLOURS: [RGBColor; 4] = [
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
];

pub fn draw(path: &Path, results: &Results, summaries: &[KernelSummary]) -> Result<()> {
    register_font()?;
    let workloads: Vec<&str> = summaries
        .first()
        .map(|s| s.workloads.iter().map(|w| w.workload.as_str()).collect())
        .unwrap_or_default();
    // Percent, with room for the whiskers and the target line.
    let values = summaries
        .iter()
        .flat_map(|s| s.workloads.iter())
        .flat_map(|w| [w.paired.min, w.paired.max, w.overhead])
        .map(|v| v * 100.0);
    let (low, high) = values.fold((0.0f64, TARGET_OVERHEAD * 100.0), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    // Room above the tallest bar for its label and the legend.
    let pad = (high - low).max(1.0) * 0.25;
    let y = (low - pad).min(-1.0)..(high + pad);
    let groups = workloads.len() as f64;
    let rounds = results.kernels.first().map_or(0, |k| k.setup.rounds);

    let root = BitMapBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_err)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("rtguard overhead per workload (median of {rounds} rounds, qemu TCG -icount)"),
            ("sans-serif", 22),
        )
        .margin(16)
        .x_label_area_size(36)
        .y_label_area_size(64)
        .build_cartesian_2d(0.0..groups, y.clone())
        .map_err(plot_err)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(0)
        .y_desc("overhead (%)")
        .y_label_formatter(&|v| format!("{v:+.0}%"))
        .label_style(("sans-serif", 15))
        .draw()
        .map_err(plot_err)?;

    // Bars: within each workload's slot, one per kernel.
    let width = 0.7 / summaries.len().max(1) as f64;
    for (k, s) in summaries.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let left = |i: usize| i as f64 + 0.15 + k as f64 * width;
        chart
            .draw_series(s.workloads.iter().enumerate().map(|(i, w)| {
                Rectangle::new(
                    [(left(i), 0.0), (left(i) + width * 0.9, w.overhead * 100.0)],
                    colour.filled(),
                )
            }))
            .map_err(plot_err)?
            .label(format!("Linux {}", s.series))
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 14, y + 6)], colour.filled()));
        // Whiskers: the smallest and largest per-round ratio.
        chart
            .draw_series(s.workloads.iter().enumerate().map(|(i, w)| {
                let x = left(i) + width * 0.45;
                PathElement::new(
                    vec![(x, w.paired.min * 100.0), (x, w.paired.max * 100.0)],
                    BLACK.stroke_width(2),
                )
            }))
            .map_err(plot_err)?;
        chart
            .draw_series(s.workloads.iter().enumerate().map(|(i, w)| {
                let v = w.overhead * 100.0;
                // Above the bar and its whisker (below, for a negative bar).
                let (at, anchor) = if v >= 0.0 {
                    (v.max(w.paired.max * 100.0) + pad * 0.1, VPos::Bottom)
                } else {
                    (v.min(w.paired.min * 100.0) - pad * 0.1, VPos::Top)
                };
                Text::new(
                    format!("{v:+.1}%"),
                    (left(i) + width * 0.45, at),
                    ("sans-serif", 14)
                        .into_font()
                        .into_text_style(&root)
                        .pos(Pos::new(HPos::Center, anchor)),
                )
            }))
            .map_err(plot_err)?;
    }
    let target = TARGET_OVERHEAD * 100.0;
    chart
        .draw_series([PathElement::new(
            vec![(0.0, target), (groups, target)],
            RED.stroke_width(2),
        )])
        .map_err(plot_err)?
        .label(format!("target ≤ {target:.0}%"))
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], RED.stroke_width(2)));
    chart
        .draw_series([PathElement::new(vec![(0.0, 0.0), (groups, 0.0)], BLACK)])
        .map_err(plot_err)?;
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .position(SeriesLabelPosition::UpperLeft)
        .draw()
        .map_err(plot_err)?;

    // Workload names under their slots.
    for (i, name) in workloads.iter().enumerate() {
        let (px, py) = chart.backend_coord(&(i as f64 + 0.5, y.start));
        root.draw(&Text::new(
            name.to_string(),
            (px, py + 8),
            ("sans-serif", 16)
                .into_font()
                .into_text_style(&root)
                .pos(Pos::new(HPos::Center, VPos::Top)),
        ))
        .map_err(plot_err)?;
    }
    root.present().map_err(plot_err)?;
    Ok(())
}

/// plotters draws text with ab_glyph from a font it is handed: no system font library.
fn register_font() -> Result<()> {
    let bytes = std::fs::read(FONT).with_context(|| {
        format!("reading {FONT} (Debian's fonts-dejavu-core; `cargo xtask setup` installs it)")
    })?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(bytes.into()))
        .map_err(|_| anyhow!("{FONT} is not a font plotters can use"))
}

fn plot_err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("drawing the chart: {e:?}")
}
