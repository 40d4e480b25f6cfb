//! The report's SVG charts. Legends and captions stay outside the plot
//! area (the legend is an HTML list under the chart); every chart comes
//! with its figures as a table, for screen readers and for print.

use std::fmt::Write;

use super::esc;
use super::format::number;

pub const W: f64 = 640.0;
pub const H: f64 = 220.0;
/// The plot area: left, top, right, bottom.
pub const PAD_L: f64 = 56.0;
pub const PAD_T: f64 = 22.0;
pub const PAD_R: f64 = 8.0;
pub const PAD_B: f64 = 36.0;
pub const COLORS: [&str; 6] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"];
/// The colour of reference and threshold lines.
pub const MARK: &str = "#555555";
/// The colour of the line that marks a change of pace found in the data.
pub const CHANGE: &str = "#7b3294";

/// One chart of the report.
pub struct Chart {
    pub id: &'static str,
    pub title: String,
    pub svg: String,
    /// (colour, label) of each series and reference line.
    pub legend: Vec<(String, String)>,
    /// The chart's figures: (label, value) rows.
    pub table: Vec<(String, String)>,
}

fn svg_open(out: &mut String, title: &str) {
    let _ = write!(
        out,
        "<svg viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" role=\"img\" aria-label=\"{}\"><title>{}</title>",
        esc(title),
        esc(title)
    );
}

/// A round axis value as the language writes it.
fn short(v: f64, lang: &str) -> String {
    if v >= 10_000.0 {
        format!("{}k", number((v / 1000.0).round(), lang))
    } else if v >= 10.0 || v == 0.0 {
        number(v.round(), lang)
    } else {
        number((v * 100.0).round() / 100.0, lang)
    }
}

fn axis(out: &mut String, max: f64, label: &str, lang: &str) {
    let y0 = H - PAD_B;
    let _ = write!(out, "<line x1=\"{PAD_L}\" y1=\"{PAD_T}\" x2=\"{PAD_L}\" y2=\"{y0}\" stroke=\"#444\"/>");
    let _ =
        write!(out, "<line x1=\"{PAD_L}\" y1=\"{y0}\" x2=\"{}\" y2=\"{y0}\" stroke=\"#444\"/>", W - PAD_R);
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = y0 - (y0 - PAD_T) * f64::from(i) / 4.0;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{:.1}\" font-size=\"10\" text-anchor=\"end\">{}</text><line x1=\"{PAD_L}\" y1=\"{y:.1}\" x2=\"{}\" y2=\"{y:.1}\" stroke=\"#ddd\"/>",
            PAD_L - 4.0,
            y + 3.0,
            short(v, lang),
            W - PAD_R
        );
    }
    // The unit sits above the axis, outside the plot area.
    let _ = write!(out, "<text class=\"unit\" x=\"4\" y=\"12\" font-size=\"10\">{}</text>", esc(label));
}

/// Bars, one per (label, value); `mark` draws a dashed vertical line after
/// the given number of bars (a threshold), its caption above the plot.
pub fn bars(
    id: &'static str,
    title: String,
    unit: &str,
    bars: &[(String, f64)],
    color: &str,
    mark: Option<(f64, String)>,
    lang: &str,
) -> Chart {
    let mut o = String::new();
    svg_open(&mut o, &title);
    let max = bars.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9);
    axis(&mut o, max, unit, lang);
    let n = bars.len().max(1) as f64;
    let bw = (W - PAD_R - PAD_L) / n;
    let y0 = H - PAD_B;
    for (i, (label, v)) in bars.iter().enumerate() {
        let h = (y0 - PAD_T) * v / max;
        let x = PAD_L + bw * i as f64;
        let _ = write!(
            o,
            "<rect class=\"bar\" x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{h:.1}\" fill=\"{color}\"><title>{}: {}</title></rect>",
            x + bw * 0.1,
            y0 - h,
            bw * 0.8,
            esc(label),
            number(*v, lang)
        );
        if bars.len() <= 16 || i % (bars.len() / 12 + 1) == 0 {
            let _ = write!(
                o,
                "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
                x + bw / 2.0,
                y0 + 12.0,
                esc(label)
            );
        }
    }
    let mut legend = Vec::new();
    if let Some((pos, caption)) = &mark {
        let x = PAD_L + bw * pos;
        let _ = write!(
            o,
            "<line class=\"mark\" x1=\"{x:.1}\" y1=\"{PAD_T}\" x2=\"{x:.1}\" y2=\"{y0}\" stroke=\"{MARK}\" stroke-width=\"2\" stroke-dasharray=\"4 3\"/>",
        );
        legend.push((MARK.to_string(), caption.clone()));
    }
    o.push_str("</svg>");
    let table = bars.iter().map(|(l, v)| (l.clone(), number(*v, lang))).collect();
    Chart { id, title, svg: o, legend, table }
}

/// What a line chart marks besides its series: a horizontal reference
/// (value, caption), the week index of a change of pace (a vertical line;
/// its caption is the caller's), and the index of a series drawn as steps
/// (a level in force until the next one: a target).
#[derive(Debug, Clone, Default)]
pub struct Marks {
    pub reference: Option<(f64, String)>,
    pub change: Option<usize>,
    pub steps: Option<usize>,
}

/// Lines over weeks, one per series, and a dashed reference line; the
/// legend goes under the chart.
pub fn lines(
    id: &'static str,
    title: String,
    unit: &str,
    weeks: &[(String, String)],
    series: &[(String, Vec<Option<f64>>)],
    marks: Marks,
    lang: &str,
) -> Chart {
    let Marks { reference, change, steps } = marks;
    let mut o = String::new();
    svg_open(&mut o, &title);
    let max = series
        .iter()
        .flat_map(|s| s.1.iter().flatten())
        .copied()
        .chain(reference.as_ref().map(|b| b.0))
        .fold(0.0, f64::max)
        .max(1e-9)
        * 1.1;
    axis(&mut o, max, unit, lang);
    let y0 = H - PAD_B;
    let n = weeks.len().max(2) as f64 - 1.0;
    let x = |i: usize| PAD_L + 10.0 + (W - PAD_R - 20.0 - PAD_L) * i as f64 / n;
    let y = |v: f64| y0 - (y0 - PAD_T) * v / max;
    for (i, (short_label, _)) in weeks.iter().enumerate() {
        let _ = write!(
            o,
            "<text x=\"{:.1}\" y=\"{:.1}\" font-size=\"9\" text-anchor=\"middle\">{}</text>",
            x(i),
            y0 + 12.0,
            esc(short_label)
        );
    }
    let mut legend = Vec::new();
    if let Some((b, caption)) = &reference {
        let _ = write!(
            o,
            "<line class=\"baseline\" x1=\"{PAD_L}\" y1=\"{:.1}\" x2=\"{}\" y2=\"{:.1}\" stroke=\"{MARK}\" stroke-dasharray=\"5 4\"/>",
            y(*b),
            W - PAD_R,
            y(*b),
        );
        legend.push((MARK.to_string(), caption.clone()));
    }
    // The week a change of pace was found in: a vertical line (its caption
    // is the caller's, in the legend).
    if let Some(i) = change.filter(|i| *i < weeks.len()) {
        let _ = write!(
            o,
            "<line class=\"change\" x1=\"{:.1}\" y1=\"{PAD_T}\" x2=\"{:.1}\" y2=\"{y0:.1}\" stroke=\"{CHANGE}\" stroke-width=\"2\" stroke-dasharray=\"2 3\"/>",
            x(i),
            x(i)
        );
    }
    let mut table = Vec::new();
    for (si, (name, values)) in series.iter().enumerate() {
        let color = COLORS[si % COLORS.len()];
        let mut pts: Vec<String> = Vec::new();
        let mut prev: Option<f64> = None;
        for (i, v) in values.iter().enumerate() {
            let Some(v) = v else { continue };
            // A step: the previous level runs to this week, then jumps.
            if let (Some(p), true) = (prev, steps == Some(si)) {
                pts.push(format!("{:.1},{:.1}", x(i), y(p)));
            }
            pts.push(format!("{:.1},{:.1}", x(i), y(*v)));
            prev = Some(*v);
        }
        let (width, class) = match (si, steps == Some(si)) {
            (_, true) => (2, "series steps"),
            (0, _) => (3, "series"),
            _ => (1, "series"),
        };
        let _ = write!(
            o,
            "<polyline class=\"{class}\" points=\"{}\" fill=\"none\" stroke=\"{color}\" stroke-width=\"{width}\"/>",
            pts.join(" ")
        );
        legend.push((color.to_string(), name.clone()));
        for ((_, long), v) in weeks.iter().zip(values) {
            if let Some(v) = v {
                table.push((format!("{name}, {long}"), number((v * 10.0).round() / 10.0, lang)));
            }
        }
    }
    o.push_str("</svg>");
    Chart { id, title, svg: o, legend, table }
}
