//! The smallest end-to-end check: a request through the LB reaches a backend and back.
mod common;
use common::*;

#[tokio::test]
async fn a_request_goes_through() {
    let b = backends(3).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    let mut names = Vec::new();
    let mut c = Client::connect(addr).await;
    for _ in 0..6 {
        let a = c.get("/").await;
        assert_eq!(a.status, 200);
        names.push(a.server());
    }
    assert_eq!(names, ["s1", "s2", "s3", "s1", "s2", "s3"]);
}
