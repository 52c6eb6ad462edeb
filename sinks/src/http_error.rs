//! Which errors of the HTTP client are ours, not the receiver's.

/// Whether `e` says the request could not even be built or written here (a
/// header value or url the client refuses): sending it again can never work,
/// so the sink fails instead of retrying it forever.
pub(crate) fn built_wrong(e: &ureq::Error) -> bool {
    match e {
        ureq::Error::Http(_)
        | ureq::Error::BadUri(_)
        | ureq::Error::RequireHttpsOnly(_)
        | ureq::Error::InvalidProxyUrl => true,
        // ureq_proto's errors about our own request's headers (the others are
        // about the answer, the receiver's fault).
        ureq::Error::Protocol(p) => {
            let text = p.to_string();
            text.starts_with("bad header") || text.ends_with("header is not a string")
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_header_the_client_refuses_is_ours_a_refused_connection_is_not() {
        let agent: ureq::Agent = ureq::Agent::config_builder().proxy(None).build().into();
        // The client refuses the header once connected (the kernel accepts
        // the connection into the backlog; nothing answers).
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        let e = agent
            .post(&url)
            .header("Authorization", "Bearer \u{feff}tok")
            .send("x")
            .unwrap_err();
        assert!(super::built_wrong(&e), "{e:?}");
        // Port 1: nothing listens.
        let e = agent.post("http://127.0.0.1:1/").send("x").unwrap_err();
        assert!(!super::built_wrong(&e), "{e:?}");
    }
}
