use url::Url;
fn main() {
    let dir = "bench-corpus/c2000";
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "xml"))
        .collect();
    names.sort();
    for p in names.iter().take(100) {
        let b = std::fs::read(p).unwrap();
        let u = Url::parse("http://127.0.0.1/x").unwrap();
        let feed = feed_rs::parser::parse(&b[..]).unwrap();
        for html in feed
            .entries
            .iter()
            .filter_map(|e| e.content.as_ref()?.body.clone())
        {
            if gazette::sanitize::fast_clean(&html, Some(&u)).is_none() && n < 6 {
                n += 1;
                // find the failing point by bisecting prefixes at tag boundaries
                let mut last_ok = 0;
                for (i, _) in html.match_indices('<') {
                    let _ = i;
                    last_ok = i;
                }
                println!("---- {}\n{}", p.display(), &html[..html.len().min(3000)]);
                let _ = last_ok;
            }
        }
    }
}
