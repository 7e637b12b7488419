//! A minimal SMTP client: one plain-text message per connection to a relay (RFC 5321's EHLO,
//! MAIL, RCPT, DATA, QUIT), with a deadline on every step.
//!
//! Why not `lettre`: with the features this needs (tokio, rustls) it adds seven crates to the
//! build (`async-trait`, `email-encoding`, `email_address`, `nom`, `quoted_printable`,
//! `webpki-roots`, itself) for a dialogue of five commands. The appliance hands mail to a relay
//! on loopback or in its cluster (a sidecar MTA, or the provider's relay through one), which
//! owns TLS, DKIM and retries. STARTTLS and AUTH are not spoken yet.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// Longest reply line read, bytes (RFC 5321 allows 512; some servers send more in EHLO).
pub const REPLY_LINE_BYTES_MAX: u64 = 2048;
/// Most lines in one (multi-line) reply.
pub const REPLY_LINES_MAX: usize = 64;
/// Longest e-mail address accepted, bytes (RFC 5321's path limit).
pub const ADDRESS_BYTES_MAX: usize = 254;

/// Where and how mail is sent.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MailConfig {
    /// The relay, `host:port`.
    pub server: String,
    /// The sender address.
    pub from: String,
    /// The name given in EHLO.
    pub helo_name: String,
    /// Deadline of each step (connect, each command).
    pub step_timeout: Duration,
}

impl MailConfig {
    /// A relay at `server` sending as `from`.
    pub fn new(server: impl Into<String>, from: impl Into<String>) -> MailConfig {
        MailConfig {
            server: server.into(),
            from: from.into(),
            helo_name: "peregrine".to_owned(),
            step_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MailError {
    /// The relay could not be reached.
    #[error("connect to {server}: {source}")]
    Connect {
        /// The relay.
        server: String,
        /// Why.
        source: std::io::Error,
    },
    /// Reading or writing failed.
    #[error("during {step}: {source}")]
    Io {
        /// The step.
        step: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// A step took longer than its deadline.
    #[error("timed out during {step}")]
    Timeout {
        /// The step.
        step: &'static str,
    },
    /// The relay answered with an unexpected code.
    #[error("{step} refused: {code} {text}")]
    Refused {
        /// The step.
        step: &'static str,
        /// The reply code.
        code: u16,
        /// The reply's last line.
        text: String,
    },
    /// The relay's reply is not SMTP.
    #[error("malformed reply during {step}")]
    Malformed {
        /// The step.
        step: &'static str,
    },
    /// An address with characters that could inject headers or commands.
    #[error("invalid address")]
    InvalidAddress,
}

/// A plain-text message.
#[derive(Clone, Debug)]
pub struct Message {
    /// The recipient.
    pub to: String,
    /// The subject (one line).
    pub subject: String,
    /// The text.
    pub body: String,
}

/// Whether `address` is a plausible mailbox we can put in a header and an SMTP command: one
/// `@` between non-empty parts, printable ASCII, no blanks, quotes, angle brackets or commas.
pub fn valid_address(address: &str) -> bool {
    let Some((local, domain)) = address.split_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && address.len() <= ADDRESS_BYTES_MAX
        && !domain.contains('@')
        && address
            .bytes()
            .all(|b| b.is_ascii_graphic() && !b"<>()[]\\,;:\"".contains(&b))
}

/// A reply line's code and whether it is the reply's last line (`250 ok` vs `250-more`).
fn parse_reply_line(line: &str) -> Option<(u16, bool)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let code = line.get(..3)?;
    if !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let code: u16 = code.parse().ok()?;
    match line.as_bytes().get(3) {
        None | Some(b' ') => Some((code, true)),
        Some(b'-') => Some((code, false)),
        Some(_) => None,
    }
}

/// The DATA section: headers, a blank line, the body with CRLF line ends and leading dots
/// doubled (RFC 5321 4.5.2), then the terminating dot.
fn data_section(from: &str, message: &Message) -> String {
    let subject: String = message
        .subject
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    let mut out = format!(
        "From: <{from}>\r\nTo: <{}>\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        message.to
    );
    for line in message.body.lines() {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// Sends `message` through the relay of `config`.
pub async fn send(config: &MailConfig, message: &Message) -> Result<(), MailError> {
    if !valid_address(&config.from) || !valid_address(&message.to) {
        return Err(MailError::InvalidAddress);
    }
    let connect = TcpStream::connect(config.server.as_str());
    let stream = tokio::time::timeout(config.step_timeout, connect)
        .await
        .map_err(|_| MailError::Timeout { step: "connect" })?
        .map_err(|source| MailError::Connect {
            server: config.server.clone(),
            source,
        })?;
    let mut session = Session {
        stream: BufReader::new(stream),
        timeout: config.step_timeout,
    };
    session.exchange("greeting", None, 220).await?;
    let ehlo = format!("EHLO {}\r\n", config.helo_name);
    session.exchange("EHLO", Some(&ehlo), 250).await?;
    let mail_from = format!("MAIL FROM:<{}>\r\n", config.from);
    session.exchange("MAIL FROM", Some(&mail_from), 250).await?;
    let rcpt = format!("RCPT TO:<{}>\r\n", message.to);
    session.exchange("RCPT TO", Some(&rcpt), 250).await?;
    session.exchange("DATA", Some("DATA\r\n"), 354).await?;
    let data = data_section(&config.from, message);
    session.exchange("message", Some(&data), 250).await?;
    // The message is accepted; a failed QUIT changes nothing.
    let _ = session.exchange("QUIT", Some("QUIT\r\n"), 221).await;
    Ok(())
}

/// One SMTP connection.
struct Session<S> {
    stream: BufReader<S>,
    timeout: Duration,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Sends `command` (if any) and reads the reply, which must carry `expected` (251 counts
    /// as 250: "user not local; will forward").
    async fn exchange(
        &mut self,
        step: &'static str,
        command: Option<&str>,
        expected: u16,
    ) -> Result<(), MailError> {
        let timeout = self.timeout;
        let exchange = async {
            if let Some(command) = command {
                let stream = self.stream.get_mut();
                stream.write_all(command.as_bytes()).await?;
                stream.flush().await?;
            }
            self.read_reply().await
        };
        let reply = tokio::time::timeout(timeout, exchange)
            .await
            .map_err(|_| MailError::Timeout { step })?
            .map_err(|source| MailError::Io { step, source })?;
        let Some((code, text)) = reply else {
            return Err(MailError::Malformed { step });
        };
        if code == expected || (expected == 250 && code == 251) {
            Ok(())
        } else {
            Err(MailError::Refused { step, code, text })
        }
    }

    /// Reads one reply: its code and last line; `None` when it is not SMTP.
    async fn read_reply(&mut self) -> std::io::Result<Option<(u16, String)>> {
        let mut line = String::new();
        for _ in 0..REPLY_LINES_MAX {
            line.clear();
            let read = (&mut self.stream)
                .take(REPLY_LINE_BYTES_MAX)
                .read_line(&mut line)
                .await?;
            if read == 0 {
                return Ok(None);
            }
            match parse_reply_line(&line) {
                Some((code, true)) => return Ok(Some((code, line.trim_end().to_owned()))),
                Some((_, false)) => {}
                None => return Ok(None),
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_lines_are_parsed() {
        assert_eq!(parse_reply_line("250-SIZE 1000\r\n"), Some((250, false)));
        assert_eq!(parse_reply_line("250 OK\r\n"), Some((250, true)));
        assert_eq!(parse_reply_line("221\r\n"), Some((221, true)));
        assert_eq!(parse_reply_line("25O OK"), None);
        assert_eq!(parse_reply_line("250xOK"), None);
    }

    #[test]
    fn addresses_that_could_inject_are_refused() {
        assert!(valid_address("a.b+c@example.com"));
        assert!(!valid_address("a@b.com\r\nBcc: x@y.z"));
        assert!(!valid_address("a b@example.com"));
        assert!(!valid_address("<a@example.com>"));
        assert!(!valid_address("a@example"));
        assert!(!valid_address("@example.com"));
        assert!(!valid_address("a@b@example.com"));
    }

    #[test]
    fn the_body_is_dot_stuffed() {
        let message = Message {
            to: "a@example.com".to_owned(),
            subject: "hi\r\nBcc: x@y.z".to_owned(),
            body: "line\n.dot\n".to_owned(),
        };
        let data = data_section("noreply@example.com", &message);
        assert!(data.contains("Subject: hiBcc: x@y.z\r\n"));
        assert!(data.ends_with("line\r\n..dot\r\n.\r\n"), "{data}");
    }
}
