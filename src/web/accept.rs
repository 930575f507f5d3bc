//! `Accept`-style header lists (`Accept`, `Accept-Encoding`): one parser of comma-separated
//! items with `;q=` weights, and the two choices the server makes with it.

use crate::encode::Format;

/// The items of `Accept`-style header values, as (lower-cased name, weight): the name is the
/// item up to its first `;`, the weight its `q` parameter (1 when absent or unreadable, the
/// default RFC 9110 gives). Empty items are skipped.
pub fn weighted<'a>(
    values: impl Iterator<Item = &'a str> + 'a,
) -> impl Iterator<Item = (String, f32)> + 'a {
    values.flat_map(|v| v.split(',')).filter_map(|item| {
        let mut parts = item.split(';').map(str::trim);
        let name = parts.next().unwrap_or("").to_ascii_lowercase();
        if name.is_empty() {
            return None;
        }
        let q = parts
            .filter_map(|p| p.strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        Some((name, q))
    })
}

/// Picks the exposition format from `Accept`: OpenMetrics when it is acceptable and weighted at
/// least as high as the classic text format, else the classic text format.
pub fn format<'a>(accept: impl Iterator<Item = &'a str> + 'a) -> Format {
    let (mut om, mut text, mut any) = (0.0f32, 0.0f32, 0.0f32);
    for (media, q) in weighted(accept) {
        match media.as_str() {
            "application/openmetrics-text" => om = om.max(q),
            "text/plain" | "text/*" => text = text.max(q),
            "*/*" => any = any.max(q),
            _ => {}
        }
    }
    let text = if text > 0.0 { text } else { any };
    if om > 0.0 && om >= text {
        Format::OpenMetrics
    } else {
        Format::Text
    }
}

/// Whether `Accept-Encoding` takes gzip: a `gzip`, `x-gzip` or `*` coding whose weight is not 0
/// (an explicit `gzip;q=0` refuses it, whatever `*` says).
pub fn gzip<'a>(accept_encoding: impl Iterator<Item = &'a str> + 'a) -> bool {
    let mut gzip = None;
    let mut any = None;
    for (coding, q) in weighted(accept_encoding) {
        match coding.as_str() {
            "gzip" | "x-gzip" => gzip = Some(q > 0.0),
            "*" => any = Some(q > 0.0),
            _ => {}
        }
    }
    gzip.or(any).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn negotiate(accept: Option<&str>) -> Format {
        format(accept.into_iter())
    }

    #[test]
    fn format_follows_accept_weights() {
        assert_eq!(negotiate(None), Format::Text);
        assert_eq!(negotiate(Some("*/*")), Format::Text);
        assert_eq!(negotiate(Some("text/plain")), Format::Text);
        // What Prometheus 2.x/3.x sends.
        let prom = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert_eq!(negotiate(Some(prom)), Format::OpenMetrics);
        assert_eq!(
            negotiate(Some("application/openmetrics-text; version=1.0.0")),
            Format::OpenMetrics
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0.2,text/plain;q=0.9")),
            Format::Text
        );
        assert_eq!(
            negotiate(Some("application/openmetrics-text;q=0")),
            Format::Text
        );
    }

    #[test]
    fn accept_encoding_is_read_as_http_says() {
        let takes = |v: &str| gzip(std::iter::once(v));
        assert!(takes("gzip"));
        assert!(takes("deflate, gzip;q=1.0, *;q=0.5"));
        assert!(takes("identity, X-GZIP"));
        assert!(takes("*"));
        assert!(!takes("identity"));
        assert!(!takes("gzip;q=0"));
        assert!(!takes("gzip; q=0.0, *"));
        assert!(!takes(""));
        assert!(gzip(["br", "gzip"].into_iter()));
    }

    #[test]
    fn items_and_weights() {
        let items: Vec<_> = weighted([" a ;q=0.5,, B;x=1;q=2 ", "c;q=oops"].into_iter()).collect();
        assert_eq!(
            items,
            [("a".into(), 0.5), ("b".into(), 2.0), ("c".into(), 1.0)]
        );
    }
}
