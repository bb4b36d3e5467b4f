//! A corpus of feeds whose HTML has real-world habits, made in memory from
//! a fixed seed: WordPress block markup and its comments, Drupal field
//! wrappers, inline styles, layout tables, YouTube iframes and embeds,
//! social-media blockquotes with their scripts, tracking pixels, entities
//! in attributes, unclosed `<p>` and `<li>`, `<font>` and `<center>`,
//! `&nbsp;` runs. The synthetic corpus's HTML is clean and takes the
//! sanitiser's fast path; these documents mostly do not.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const WORDS: &[&str] = &[
    "council",
    "resolution",
    "china",
    "lawyer",
    "defender",
    "detained",
    "russia",
    "vote",
    "geneva",
    "session",
    "report",
    "expert",
    "release",
    "arbitrary",
    "detention",
    "torture",
    "committee",
    "review",
    "hong",
    "kong",
    "journalist",
    "court",
    "appeal",
    "sentence",
    "rights",
    "human",
    "freedom",
    "assembly",
    "expression",
    "women",
    "activists",
    "prison",
];

fn words(rng: &mut StdRng, n: usize) -> String {
    (0..n)
        .map(|_| WORDS[rng.random_range(0..WORDS.len())])
        .collect::<Vec<_>>()
        .join(" ")
}

fn sentence(rng: &mut StdRng) -> String {
    let n = rng.random_range(8..22);
    let mut s = words(rng, n);
    if let Some(f) = s.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    s.push('.');
    s
}

/// One paragraph in one of the habits, with inline markup inside.
fn block(rng: &mut StdRng, site: &str, i: usize) -> String {
    let s1 = sentence(rng);
    let s2 = sentence(rng);
    let w = words(rng, 2);
    match rng.random_range(0..14) {
        0 => format!(
            "<!-- wp:paragraph -->\n<p class=\"has-text-align-left\" style=\"font-size:18px\">{s1} <strong>{w}</strong> {s2}</p>\n<!-- /wp:paragraph -->\n"
        ),
        1 => format!(
            "<!-- wp:image {{\"id\":{i},\"sizeSlug\":\"large\"}} -->\n<figure class=\"wp-block-image size-large\"><img loading=\"lazy\" decoding=\"async\" width=\"1024\" height=\"683\" src=\"https://{site}/wp-content/uploads/2026/11/photo-{i}-1024x683.jpg\" alt=\"{w}\" class=\"wp-image-{i}\" srcset=\"https://{site}/wp-content/uploads/2026/11/photo-{i}-1024x683.jpg 1024w, https://{site}/wp-content/uploads/2026/11/photo-{i}-300x200.jpg 300w\" sizes=\"(max-width: 1024px) 100vw, 1024px\" /><figcaption class=\"wp-element-caption\">{s1}</figcaption></figure>\n<!-- /wp:image -->\n"
        ),
        2 => format!(
            "<div class=\"field field--name-body field--type-text-with-summary field--label-hidden field__item\"><p>{s1}&nbsp;<a href=\"/node/{i}?utm_source=rss&amp;utm_medium=feed\" hreflang=\"en\">{w}</a>&nbsp;{s2}</p></div>\n"
        ),
        3 => format!(
            "<table style=\"width:100%;border-collapse:collapse\" border=\"1\" cellpadding=\"4\"><tbody><tr><td style=\"background:#eee\"><b>{w}</b></td><td align=\"right\">{s1}</td></tr><tr><td colspan=\"2\"><font face=\"Arial\" size=\"2\">{s2}</font></td></tr></tbody></table>\n"
        ),
        4 => format!(
            "<p>{s1}</p><iframe width=\"560\" height=\"315\" src=\"https://www.youtube.com/embed/v{i}?feature=oembed\" frameborder=\"0\" allow=\"accelerometer; autoplay; encrypted-media\" allowfullscreen></iframe>\n"
        ),
        5 => format!(
            "<blockquote class=\"twitter-tweet\" data-width=\"550\"><p lang=\"en\" dir=\"ltr\">{s1} <a href=\"https://t.co/x{i}\">pic.twitter.com/x{i}</a></p>&mdash; {w} (@rights) <a href=\"https://twitter.com/rights/status/{i}?ref_src=twsrc%5Etfw\">November 2, 2026</a></blockquote> <script async src=\"https://platform.twitter.com/widgets.js\" charset=\"utf-8\"></script>\n"
        ),
        6 => format!(
            "<p>{s1}<img src=\"https://pixel.wp.com/b.gif?host={site}&amp;blog={i}&amp;post={i}&amp;subd=x&amp;ref=&amp;feed=1\" alt=\"\" width=\"1\" height=\"1\" border=\"0\" /></p>\n"
        ),
        7 => format!("<p>{s1}\n<p>{s2} <i>{w}</i>\n<ul><li>{w}<li>{s1}</ul>\n"),
        8 => format!(
            "<center><span style=\"color: #333333; font-family: Georgia, serif;\">{s1} &ldquo;{w}&rdquo; &hellip; {s2}</span></center><br><br>\n"
        ),
        9 => format!(
            "<p><a title=\"&quot;{w}&quot; &amp; more\" href=\"https://{site}/?p={i}&amp;lang=fr#comments\" target=\"_blank\" rel=\"noopener\">{s1}</a></p>\n"
        ),
        10 => format!(
            "<div class=\"wp-block-embed__wrapper\"><embed src=\"https://{site}/media/{i}.swf\" type=\"application/x-shockwave-flash\" width=\"400\" height=\"300\"></div><p>{s2}</p>\n"
        ),
        11 => format!(
            "<p style=\"text-align: justify;\"><span style=\"font-weight: 400;\">{s1}</span><span style=\"font-weight: 400;\"> {s2}</span></p>\n"
        ),
        12 => format!(
            "<h2 id=\"h-{i}\" class=\"wp-block-heading\">{w}</h2>\n<p>{s1} <sup><a href=\"#fn{i}\" id=\"ref{i}\">{i}</a></sup> {s2}</p>\n"
        ),
        _ => format!("<p>{s1} <em>{w}</em>. {s2}</p>\n"),
    }
}

/// `n` RSS 2.0 documents of 20 items, each item's `content:encoded` a few
/// kilobytes of HTML in the habits above; (file name, bytes).
pub fn corpus(n: usize, seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..n)
        .map(|f| {
            let site = format!("site{f}.example.org");
            let mut doc = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<rss version=\"2.0\" xmlns:content=\"http://purl.org/rss/1.0/modules/content/\" xmlns:dc=\"http://purl.org/dc/elements/1.1/\">\n<channel><title>Site {f}</title><link>https://{site}/</link><description>Real-world HTML</description>\n"
            );
            for i in 0..20 {
                let blocks = rng.random_range(4..12);
                let html: String = (0..blocks).map(|b| block(&mut rng, &site, f * 1000 + i * 20 + b)).collect();
                let title = sentence(&mut rng);
                let day = 1 + (i % 28);
                doc.push_str(&format!(
                    "<item><title>{title}</title><link>https://{site}/2026/11/{day:02}/story-{i}/</link><dc:creator><![CDATA[{w}]]></dc:creator><pubDate>Mon, {day:02} Nov 2026 10:{i:02}:00 +0000</pubDate><category><![CDATA[News]]></category><guid isPermaLink=\"false\">https://{site}/?p={f}{i}</guid><description><![CDATA[{summary} [&#8230;]]]></description><content:encoded><![CDATA[{html}]]></content:encoded></item>\n",
                    w = words(&mut rng, 2),
                    summary = sentence(&mut rng),
                ));
            }
            doc.push_str("</channel></rss>\n");
            (format!("realworld-{f:04}.xml"), doc.into_bytes())
        })
        .collect()
}
