//! E-mail through a real SMTP server (aiosmtpd), read back as a mail client would see it.

use passme_core::mail::{Mailer, Template};
use passme_policy::Lang;
use passme_testkit::SmtpSink;
use secrecy::SecretString;

#[tokio::test]
async fn messages_arrive_in_danish_and_english_with_their_links() {
    let sink = SmtpSink::start();
    let mailer = Mailer::smtp(&SecretString::from(sink.url()), "PassMe AI <no-reply@passme.ai>").expect("mailer");
    let link = "https://passme.test/verify?token=AbC-123_xyz";
    mailer.send("soren@eksempel.dk", Lang::Da, &Template::VerifyAddress { link: link.into() }).await.expect("send da");
    mailer.send("ola@example.com", Lang::En, &Template::PasswordReset { link: link.into() }).await.expect("send en");
    let messages = sink.wait_for(2);
    assert_eq!(messages.len(), 2);
    let da = messages.iter().find(|m| m.subject.starts_with("Bekræft")).expect("Danish message");
    assert_eq!(da.subject, "Bekræft din e-mailadresse hos PassMe AI");
    assert!(da.body.contains(link) && da.body.contains("Linket virker i 24 timer"), "{}", da.body);
    assert!(da.from.contains("no-reply@passme.ai"));
    let en = messages.iter().find(|m| m.subject.starts_with("Choose")).expect("English message");
    assert!(en.body.contains("The link works once and for one hour"), "{}", en.body);
    assert_eq!(en.to, "ola@example.com");
}

#[tokio::test]
async fn an_unreachable_server_is_a_clear_error_that_leaks_no_link() {
    let mailer = Mailer::smtp(&SecretString::from("smtp://127.0.0.1:1".to_string()), "PassMe AI <no-reply@passme.ai>").expect("mailer");
    let err = mailer
        .send("ola@example.com", Lang::En, &Template::PasswordReset { link: "https://x/reset?token=SECRET".into() })
        .await
        .expect_err("no server");
    assert_eq!(err.code(), "mail_send_failed");
    assert!(!err.to_string().contains("SECRET"));
}
