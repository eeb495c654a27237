//! The run's picture (SVG, no dependencies): for the non-streaming
//! pass-through at the highest concurrency measured, requests per second
//! and the router's CPU per request for every target, and latency
//! percentiles (p50, p90, p99) — how people compare routers at a glance.

use std::fmt::Write as _;

/// One target's figures for the chart.
pub struct Bar {
    pub name: String,
    pub rps: f64,
    /// Router CPU µs per request (none for direct: no router).
    pub cpu_us: Option<f64>,
    /// p50, p90, p99 in ms.
    pub latency_ms: [f64; 3],
}

const W: f64 = 1000.0;
const H: f64 = 340.0;
const GAP: f64 = 24.0;
/// The panels' widths: requests/s, CPU, latency.
const PANELS: [f64; 3] = [280.0, 220.0, 420.0];
const TOP: f64 = 64.0;
const PLOT: f64 = 210.0;

fn colour(name: &str) -> &'static str {
    match name {
        "direct" => "#9aa5b1",
        "woollama" => "#2f6fde",
        "nginx" => "#2e9e5b",
        _ => "#c9782b",
    }
}

/// A value written short: 47 062 → "47.1k", 21.04 → "21.0", 0.352 → "0.352".
fn short(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1}k", v / 1000.0)
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One panel: a title, and for each group of bars its label and values.
fn panel(
    svg: &mut String,
    x0: f64,
    width: f64,
    title: &str,
    groups: &[(String, Vec<(f64, &'static str)>)],
) {
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" class="t">{}</text>"#,
        x0 + width / 2.0,
        TOP - 18.0,
        esc(title)
    );
    let max = groups
        .iter()
        .flat_map(|(_, v)| v.iter().map(|(x, _)| *x))
        .fold(0.0_f64, f64::max)
        .max(1e-9);
    let base = TOP + PLOT;
    let _ = writeln!(
        svg,
        r##"<line x1="{x0:.1}" y1="{base:.1}" x2="{:.1}" y2="{base:.1}" stroke="#555"/>"##,
        x0 + width
    );
    let slot = width / groups.len().max(1) as f64;
    for (i, (label, values)) in groups.iter().enumerate() {
        let gx = x0 + slot * i as f64;
        let n = values.len().max(1) as f64;
        let bw = (slot * 0.8 / n).min(56.0);
        let start = gx + (slot - bw * n) / 2.0;
        for (j, (v, fill)) in values.iter().enumerate() {
            // Headroom above the tallest bar for its label.
            let h = PLOT * 0.9 * v / max;
            let x = start + bw * j as f64;
            let _ = writeln!(
                svg,
                r#"<rect x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{fill}"/>"#,
                base - h,
                bw - 2.0
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" class="v">{}</text>"#,
                x + bw / 2.0 - 1.0,
                base - h - 4.0,
                short(*v)
            );
        }
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" class="l">{}</text>"#,
            gx + slot / 2.0,
            base + 16.0,
            esc(label)
        );
    }
}

/// The chart for `bars` at concurrency `c`.
pub fn svg(bars: &[Bar], c: u32, title: &str) -> String {
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif">"#
    );
    let _ = writeln!(
        svg,
        r##"<style>.t{{font-size:14px;font-weight:bold;text-anchor:middle}}.v{{font-size:9px;text-anchor:middle;fill:#222}}.l{{font-size:12px;text-anchor:middle}}.h{{font-size:15px;font-weight:bold}}.k{{font-size:11px;fill:#444}}</style>
<rect width="100%" height="100%" fill="#fff"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{GAP}" y="22" class="h">{}</text>"#,
        esc(title)
    );
    let rps: Vec<_> = bars
        .iter()
        .map(|b| (b.name.clone(), vec![(b.rps, colour(&b.name))]))
        .collect();
    let x = [
        GAP,
        GAP * 2.0 + PANELS[0],
        GAP * 3.0 + PANELS[0] + PANELS[1],
    ];
    panel(
        &mut svg,
        x[0],
        PANELS[0],
        &format!("requests/s at c={c} (higher)"),
        &rps,
    );
    let cpu: Vec<_> = bars
        .iter()
        .filter_map(|b| Some((b.name.clone(), vec![(b.cpu_us?, colour(&b.name))])))
        .collect();
    panel(
        &mut svg,
        x[1],
        PANELS[1],
        "router CPU µs/request (lower)",
        &cpu,
    );
    let shades = ["#8fb3f0", "#4a83e0", "#1b4fa8"];
    let lat: Vec<_> = bars
        .iter()
        .map(|b| {
            let v = b
                .latency_ms
                .iter()
                .zip(shades)
                .map(|(x, s)| (*x, s))
                .collect();
            (b.name.clone(), v)
        })
        .collect();
    panel(
        &mut svg,
        x[2],
        PANELS[2],
        &format!("latency at c={c}, ms: p50, p90, p99 (lower)"),
        &lat,
    );
    let _ = writeln!(
        svg,
        r#"<text x="{GAP}" y="{:.1}" class="k">Non-streaming POST /v1/chat/completions through each router to the same mock upstream, the router on one core; direct is the mock alone.</text>"#,
        H - 12.0
    );
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_every_target_with_its_figures() {
        let bars = [
            Bar {
                name: "direct".into(),
                rps: 86_001.0,
                cpu_us: None,
                latency_ms: [0.579, 0.660, 0.709],
            },
            Bar {
                name: "woollama".into(),
                rps: 47_062.0,
                cpu_us: Some(21.0),
                latency_ms: [1.348, 1.458, 2.831],
            },
            Bar {
                name: "nginx".into(),
                rps: 82_702.0,
                cpu_us: Some(11.6),
                latency_ms: [0.645, 0.817, 2.230],
            },
        ];
        let s = svg(&bars, 64, "Run of today");
        assert!(s.starts_with("<svg") && s.ends_with("</svg>\n"));
        for want in ["47.1k", "82.7k", "21.0", "11.6", "2.831", ">nginx<", "c=64"] {
            assert!(s.contains(want), "{want} missing");
        }
        // No CPU bar for direct: three rps bars, two CPU bars, nine latency bars.
        assert_eq!(s.matches("<rect x=").count(), 3 + 2 + 9);
    }
}
