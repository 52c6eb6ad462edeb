//! Which errors of the HTTP client are ours, not the receiver's, and what of
//! a receiver's answer may be shown.

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

/// The start of an answer's body if it is text (errors may reach whoever
/// submitted the job, and the url may be anything the member reaches: a
/// binary answer is left out, not shown).
pub(crate) fn text_only(body: Vec<u8>) -> String {
    // The first bytes read may cut a character in two: that one is dropped.
    let text = match String::from_utf8(body) {
        Ok(t) => t,
        Err(e) => {
            let valid = e.utf8_error().valid_up_to();
            let mut bytes = e.into_bytes();
            if bytes.len() - valid > 3 {
                return "[a non-text answer, not shown]".to_string();
            }
            bytes.truncate(valid);
            String::from_utf8(bytes).unwrap_or_default()
        }
    };
    let control = text
        .chars()
        .filter(|c| c.is_control() && !c.is_whitespace())
        .count();
    if control > 0 {
        return "[a non-text answer, not shown]".to_string();
    }
    text
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

    #[test]
    fn only_text_answers_are_shown() {
        assert_eq!(
            super::text_only(b"out of order sample\n".to_vec()),
            "out of order sample\n"
        );
        // Cut inside a character: the rest is shown.
        assert_eq!(super::text_only("ab\u{e9}".as_bytes()[..3].to_vec()), "ab");
        assert_eq!(
            super::text_only(vec![0x89, b'P', b'N', b'G', 0, 0, 0, 1]),
            "[a non-text answer, not shown]"
        );
        assert_eq!(
            super::text_only(b"ok\x00\x01secret".to_vec()),
            "[a non-text answer, not shown]"
        );
    }
}
