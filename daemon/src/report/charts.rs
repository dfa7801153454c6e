//! The summary report's charts, drawn as SVG by plotters from what the report's tables show
//! (hidden counts are drawn as no bar and labelled as the table labels them, so a chart tells
//! nobody more than the table beside it). The HTML shows the SVG as an image; the PDF draws the
//! same SVG as vectors.
//!
//! Pure: values in, SVG out.

use base64::Engine;
use plotters::coord::Shift;
use plotters::coord::ranged1d::SegmentedCoord;
use plotters::coord::types::RangedCoordi32;
use plotters::coord::types::RangedCoordi64;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

/// One chart as the templates show it.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    pub title: String,
    /// What the chart shows, for a reader who cannot see it (the image's alternative text).
    pub description: String,
    pub svg: String,
}

impl Chart {
    /// `data:image/svg+xml;base64,…`, for an HTML image.
    pub fn data_uri(&self) -> String {
        format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(self.svg.as_bytes()))
    }
}

/// One bar: its label under the axis, its height (`None`: hidden, drawn as none), and what the
/// table prints for it ("12", "fewer than 5").
#[derive(Debug, Clone)]
pub struct Bar {
    pub label: String,
    pub value: Option<i64>,
    pub text: String,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 260;
const BLUE: RGBColor = RGBColor(0x4a, 0x6f, 0xa5);

/// The SVG `draw` writes. Drawing into a String cannot fail for want of space; a failure (or a
/// panic) would be a plotters bug, and the report is then made with the chart empty rather than
/// not at all.
fn drawn(draw: impl FnOnce(&mut String) -> Result<(), String>) -> String {
    let mut svg = String::new();
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| draw(&mut svg))) {
        Ok(Ok(())) => svg,
        _ => format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\"/>"),
    }
}

/// A vertical bar chart of `bars` with `y` naming what is counted.
pub fn bars(title: &str, y: &str, bars: &[Bar]) -> Chart {
    let svg = drawn(|svg| draw(svg, y, bars));
    let shown: Vec<String> = bars.iter().map(|b| format!("{}: {}", b.label, b.text)).collect();
    Chart { title: title.to_string(), description: format!("{title}. {}.", shown.join("; ")), svg }
}

/// A chart's plotting area: one segment per label along the bottom, counts up to `top` with
/// `headroom` above, and no numbered scale (each bar says its count, and a scale's small
/// numbers would read as counts the governors' report hides).
type Plot<'a, 'b> = ChartContext<'a, SVGBackend<'b>, Cartesian2d<SegmentedCoord<RangedCoordi32>, RangedCoordi64>>;

fn plot<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    labels: &[String],
    top: i64,
    headroom: i64,
    y: &str,
) -> Result<Plot<'a, 'b>, String> {
    root.fill(&WHITE).map_err(|e| e.to_string())?;
    let n = i32::try_from(labels.len()).unwrap_or(i32::MAX).max(1);
    let mut chart = ChartBuilder::on(root)
        .margin(10)
        .x_label_area_size(36)
        .y_label_area_size(28)
        .build_cartesian_2d((0..n - 1).into_segmented(), 0..top + headroom + 1)
        .map_err(|e| e.to_string())?;
    let label = |v: &SegmentValue<i32>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            labels.get(usize::try_from(*i).unwrap_or(usize::MAX)).cloned().unwrap_or_default()
        }
        SegmentValue::Last => String::new(),
    };
    chart
        .configure_mesh()
        .disable_x_mesh()
        .disable_y_mesh()
        .y_labels(1)
        .y_label_formatter(&|_| String::new())
        .x_labels(labels.len().max(1))
        .x_label_formatter(&label)
        .y_desc(y)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|e| e.to_string())?;
    Ok(chart)
}

fn draw(svg: &mut String, y: &str, bars: &[Bar]) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    let top = bars.iter().filter_map(|b| b.value).max().unwrap_or(0).max(1);
    let labels: Vec<String> = bars.iter().map(|b| b.label.clone()).collect();
    let mut chart = plot(&root, &labels, top, top / 5, y)?;
    let at = |i: usize| i32::try_from(i).ok();
    chart
        .draw_series(bars.iter().enumerate().filter_map(|(i, b)| {
            let (i, value) = (at(i)?, b.value?);
            let mut bar = Rectangle::new([(SegmentValue::Exact(i), 0), (SegmentValue::Exact(i + 1), value)], BLUE.filled());
            bar.set_margin(0, 0, 6, 6);
            Some(bar)
        }))
        .map_err(|e| e.to_string())?;
    // What the table says, over each bar: the count, or why there is no bar.
    let said = ("sans-serif", 15).into_font().into_text_style(&root).pos(Pos::new(HPos::Center, VPos::Bottom));
    chart
        .draw_series(
            bars.iter()
                .enumerate()
                .filter_map(|(i, b)| Some(Text::new(b.text.clone(), (SegmentValue::CenterOf(at(i)?), b.value.unwrap_or(0)), said.clone()))),
        )
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

/// Colours told apart by readers with any common colour blindness (Okabe and Ito); the last,
/// grey, for "other".
const PALETTE: [RGBColor; 7] = [
    RGBColor(0x00, 0x72, 0xb2),
    RGBColor(0xe6, 0x9f, 0x00),
    RGBColor(0x00, 0x9e, 0x73),
    RGBColor(0xcc, 0x79, 0xa7),
    RGBColor(0x56, 0xb4, 0xe9),
    RGBColor(0xd5, 0x5e, 0x00),
    RGBColor(0x99, 0x99, 0x99),
];

/// Stacked bars: one bar per label, one coloured part per series (`None`: hidden, not drawn),
/// each part labelled with its count when there is room, and a legend.
pub fn stacked(title: &str, y: &str, labels: &[String], series: &[(String, Vec<Option<i64>>)]) -> Chart {
    let svg = drawn(|svg| draw_stacked(svg, y, labels, series));
    let described: Vec<String> = labels
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let parts: Vec<String> = series
                .iter()
                .filter_map(|(name, v)| v.get(i).copied().flatten().filter(|n| *n > 0).map(|n| format!("{name} {n}")))
                .collect();
            format!("{l}: {}", if parts.is_empty() { "none drawn".to_string() } else { parts.join(", ") })
        })
        .collect();
    Chart { title: title.to_string(), description: format!("{title}. {}.", described.join("; ")), svg }
}

fn draw_stacked(svg: &mut String, y: &str, labels: &[String], series: &[(String, Vec<Option<i64>>)]) -> Result<(), String> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT + 60)).into_drawing_area();
    let height = |i: usize| series.iter().filter_map(|(_, v)| v.get(i).copied().flatten()).sum::<i64>();
    let top = (0..labels.len()).map(height).max().unwrap_or(0).max(1);
    // Room above the tallest bar for the legend.
    let mut chart = plot(&root, labels, top, top / 2, y)?;
    let mut base = vec![0i64; labels.len()];
    let inside = ("sans-serif", 13).into_font().into_text_style(&root).pos(Pos::new(HPos::Center, VPos::Center)).color(&WHITE);
    for (k, (name, values)) in series.iter().enumerate() {
        let colour = PALETTE[k.min(PALETTE.len() - 1)];
        let mut parts = Vec::new();
        let mut counts = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let (Some(v), Ok(x)) = (v.filter(|v| *v > 0), i32::try_from(i)) else { continue };
            let mut bar = Rectangle::new([(SegmentValue::Exact(x), base[i]), (SegmentValue::Exact(x + 1), base[i] + v)], colour.filled());
            bar.set_margin(0, 0, 6, 6);
            parts.push(bar);
            if v * 14 >= top {
                counts.push(Text::new(v.to_string(), (SegmentValue::CenterOf(x), base[i] + v / 2), inside.clone()));
            }
            base[i] += v;
        }
        chart
            .draw_series(parts)
            .map_err(|e| e.to_string())?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 12, y + 6)], colour.filled()));
        chart.draw_series(counts).map_err(|e| e.to_string())?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK)
        .draw()
        .map_err(|e| e.to_string())?;
    root.present().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bar(label: &str, value: Option<i64>, text: &str) -> Bar {
        Bar { label: label.into(), value, text: text.into() }
    }

    #[test]
    fn a_hidden_count_has_no_bar_and_reads_as_the_table_does() {
        let c = bars("Incidents per month", "incidents", &[bar("Sep", Some(12), "12"), bar("Oct", None, "fewer than 5")]);
        assert!(c.svg.starts_with("<svg"), "{}", c.svg);
        assert!(c.svg.contains("fewer than 5") && c.svg.contains("\nSep\n") && c.svg.contains("\nOct\n"), "{}", c.svg);
        // One filled bar: Oct's count is hidden, so nothing is drawn as tall as it.
        assert_eq!(c.svg.matches("fill=\"#4A6FA5\"").count(), 1, "{}", c.svg);
        assert_eq!(c.description, "Incidents per month. Sep: 12; Oct: fewer than 5.");
        assert!(c.data_uri().starts_with("data:image/svg+xml;base64,"));
    }

    #[test]
    fn no_scale_is_drawn() {
        let c = bars("By month", "incidents", &[bar("Sep", Some(40), "40")]);
        let numbers: Vec<&str> = c.svg.lines().filter(|l| l.trim().parse::<i64>().is_ok()).collect();
        assert_eq!(numbers, ["40"], "only the bar's own count: {}", c.svg);
    }

    #[test]
    fn a_stacked_chart_draws_what_is_shown_and_names_each_part() {
        let series = vec![("Neglect".to_string(), vec![Some(9), None]), ("Bullying".to_string(), vec![Some(6), Some(0)])];
        let c = stacked("By category", "incidents", &["Sep".into(), "Oct".into()], &series);
        assert!(c.svg.contains("\nNeglect\n") && c.svg.contains("\nBullying\n"), "the legend: {}", c.svg);
        assert_eq!(c.description, "By category. Sep: Neglect 9, Bullying 6; Oct: none drawn.");
        assert!(c.svg.contains("fill=\"#0072B2\"") && c.svg.contains("fill=\"#E69F00\""), "{}", c.svg);
    }

    #[test]
    fn labels_are_escaped() {
        let c = bars("By category", "incidents", &[bar("Online <safety> & \"chat\"", Some(6), "6")]);
        assert!(!c.svg.contains("<safety>"), "{}", c.svg);
    }
}
