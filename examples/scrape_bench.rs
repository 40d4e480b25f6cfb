//! Serves `/metrics` for an evaluation the size of the series budget (50
//! sites of 20 groups by default), for bench/scrape.sh:
//! `scrape_bench ADDR [SITES GROUPS]`.

use std::sync::Arc;

fn main() {
    let a: Vec<String> = std::env::args().skip(1).collect();
    let addr = a.first().cloned().unwrap_or_else(|| "127.0.0.1:9464".into());
    let sites = a.get(1).and_then(|s| s.parse().ok()).unwrap_or(50);
    let groups = a.get(2).and_then(|s| s.parse().ok()).unwrap_or(20);
    let metrics = Arc::new(vigie::metrics::Metrics::new(vigie::metrics::DEFAULT_MAX_SERIES));
    let p = metrics.publish(&vigie::metrics::budget_fixture(sites, groups, 7));
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    rt.block_on(async move {
        let listener = vigie::http::bind(&addr).await.unwrap();
        println!("{} series on http://{}/metrics", p.series, listener.local_addr().unwrap());
        vigie::http::serve(listener, metrics, None, std::future::pending()).await;
    });
}
