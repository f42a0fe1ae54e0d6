//! The page every console view is shown in: the document head (a viewport for phones, the
//! stylesheet), the navigation with the signed-in access key and its sign-out form, the
//! breadcrumbs, a notice (an error the API answered), and the live-update script.
//!
//! **Live updates:** an element with `data-live` and an `id` is refreshed in place every two
//! seconds: the script fetches the same page again (same cookie, no redirect followed) and
//! swaps each such element's content for the new page's element of the same id. Forms sit
//! outside live elements, so what a person is typing is never replaced. When the page cannot be
//! fetched (the session ended, the server is gone) it says so and stops changing the page.

use crate::html::{esc, link};

/// Who is signed in, for the navigation and the forms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Viewer {
    /// The signed-in access key id.
    pub access_key_id: String,
    /// The session's CSRF token, carried by every form.
    pub csrf: String,
}

/// What a page says above its content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// An action failed: the API's error code and message.
    Error {
        /// `InvalidParameterException`, or the console's own `FormError`.
        code: String,
        /// The message, as the API wrote it.
        message: String,
    },
}

/// A page: title, breadcrumbs (`(href, label)`, the last is the page itself), content.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<'a> {
    /// The `<title>` and heading.
    pub title: &'a str,
    /// The trail from the cluster list to this page.
    pub crumbs: Vec<(String, String)>,
    /// The content (markup from this crate's views).
    pub body: String,
    /// Shown above the content.
    pub notice: Option<Notice>,
}

/// The stylesheet: readable on a phone (one column, tables scroll sideways), no web fonts.
pub const STYLE: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1f2937;background:#f3f4f6}
header{background:#111827;color:#f9fafb;padding:.6rem 1rem;display:flex;flex-wrap:wrap;gap:.4rem 1rem;align-items:center}
header a{color:#f9fafb;text-decoration:none;font-weight:600}
header .brand{font-size:1.1rem;margin-right:auto}
header form{margin:0}
header .who{color:#9ca3af;font-size:.85rem;overflow-wrap:anywhere}
main{max-width:72rem;margin:0 auto;padding:1rem}
h1{font-size:1.35rem;margin:.2rem 0 1rem;overflow-wrap:anywhere}
h2{font-size:1.05rem;margin:1.4rem 0 .5rem}
nav.crumbs{font-size:.85rem;color:#6b7280;overflow-wrap:anywhere}
nav.crumbs a{color:#2563eb}
a{color:#2563eb}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(17rem,1fr));gap:.75rem}
.card{background:#fff;border:1px solid #e5e7eb;border-radius:.5rem;padding:.75rem 1rem}
.card h3{margin:0 0 .4rem;font-size:1rem;overflow-wrap:anywhere}
.stat{display:flex;justify-content:space-between;gap:.5rem;font-size:.9rem}
.stat b{font-variant-numeric:tabular-nums;text-align:right;overflow-wrap:anywhere;min-width:0}
.bar{height:.4rem;background:#e5e7eb;border-radius:.2rem;overflow:hidden;margin:.15rem 0 .2rem}
.free{font-size:.75rem;color:#6b7280;text-align:right;margin-bottom:.4rem}
.bar span{display:block;height:100%;background:#2563eb}
.scroll{overflow-x:auto;background:#fff;border:1px solid #e5e7eb;border-radius:.5rem}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{text-align:left;padding:.45rem .6rem;border-bottom:1px solid #f3f4f6;vertical-align:top}
th{background:#f9fafb;font-weight:600;white-space:nowrap}
td.num{font-variant-numeric:tabular-nums;text-align:right}
.badge{display:inline-block;padding:.05rem .45rem;border-radius:.8rem;font-size:.75rem;font-weight:600;background:#e5e7eb;color:#374151}
.badge.ok{background:#d1fae5;color:#065f46}.badge.busy{background:#fef3c7;color:#92400e}.badge.bad{background:#fee2e2;color:#991b1b}
.notice{background:#fee2e2;border:1px solid #fca5a5;color:#7f1d1d;border-radius:.5rem;padding:.6rem .8rem;margin-bottom:1rem;overflow-wrap:anywhere}
.muted{color:#6b7280}
.empty{color:#6b7280;font-style:italic;padding:.6rem}
section{margin-top:.75rem}
form.inline{display:flex;flex-wrap:wrap;gap:.5rem;align-items:end}
label{display:flex;flex-direction:column;font-size:.8rem;color:#4b5563;gap:.15rem}
input,select{font:inherit;padding:.35rem .5rem;border:1px solid #d1d5db;border-radius:.35rem;background:#fff;min-width:0}
button{font:inherit;padding:.4rem .9rem;border:0;border-radius:.35rem;background:#2563eb;color:#fff;cursor:pointer}
button.danger{background:#dc2626}
button.plain{background:transparent;color:#f9fafb;border:1px solid #4b5563;padding:.2rem .6rem}
pre{background:#111827;color:#e5e7eb;padding:.75rem;border-radius:.5rem;overflow:auto;font-size:.8rem;max-height:32rem}
pre.logs{white-space:pre-wrap;overflow-wrap:anywhere}
.chart{display:block;width:100%;max-width:44rem;height:auto;background:#fff;border:1px solid #e5e7eb;border-radius:.5rem}
.chart .grid{stroke:#e5e7eb}.chart .axis{font-size:10px;fill:#6b7280}.chart .legend{font-size:11px;font-weight:600}
.live{font-size:.75rem;color:#6b7280}
.signin{max-width:24rem;margin:3rem auto;background:#fff;border:1px solid #e5e7eb;border-radius:.5rem;padding:1.25rem}
.signin form{display:flex;flex-direction:column;gap:.75rem}
"#;

/// The live-update script (see the module doc).
pub const LIVE_SCRIPT: &str = r#"
(function(){
  var busy=false, stopped=false, status=document.getElementById('live-status');
  function tick(){
    if(stopped||busy||document.hidden||!document.querySelector('[data-live]')) return;
    busy=true;
    fetch(location.href,{headers:{'X-Console-Live':'1'},credentials:'same-origin',redirect:'manual',cache:'no-store'})
      .then(function(r){ if(r.status!==200){ throw new Error('status '+r.status); } return r.text(); })
      .then(function(text){
        var doc=new DOMParser().parseFromString(text,'text/html');
        document.querySelectorAll('[data-live]').forEach(function(el){
          var fresh=doc.getElementById(el.id);
          if(fresh && fresh.innerHTML!==el.innerHTML){ el.innerHTML=fresh.innerHTML; }
        });
        if(status){ status.textContent='live \u00b7 updated '+new Date().toLocaleTimeString(); }
      })
      .catch(function(){ stopped=true; if(status){ status.textContent='live updates stopped: reload the page'; } })
      .then(function(){ busy=false; });
  }
  setInterval(tick,2000);
})();
"#;

fn head(title: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><title>{} · Flotilla</title><style>{STYLE}</style></head>",
        esc(title)
    )
}

/// A hidden CSRF field for a form of a signed-in page.
pub fn csrf_field(viewer: &Viewer) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(&viewer.csrf)
    )
}

/// A whole signed-in page.
pub fn page(viewer: &Viewer, page: Page<'_>) -> String {
    let crumbs: Vec<String> = page
        .crumbs
        .iter()
        .map(|(href, label)| link(href, label))
        .collect();
    let notice = match &page.notice {
        Some(Notice::Error { code, message }) => format!(
            "<div class=\"notice\" role=\"alert\" id=\"notice\"><b>{}</b>: {}</div>",
            esc(code),
            esc(message)
        ),
        None => String::new(),
    };
    format!(
        "{head}<body><header><a class=\"brand\" href=\"/console/clusters\">Flotilla</a><a href=\"/console/clusters\">Clusters</a><a href=\"/console/task-definitions\">Task definitions</a><span class=\"who\">{who}</span><form method=\"post\" action=\"/console/signout\">{csrf}<button class=\"plain\" type=\"submit\">Sign out</button></form></header><main><nav class=\"crumbs\">{crumbs}</nav><h1>{title}</h1><div class=\"live\" id=\"live-status\">live</div>{notice}{body}</main><script>{LIVE_SCRIPT}</script></body></html>",
        head = head(page.title),
        who = esc(&viewer.access_key_id),
        csrf = csrf_field(viewer),
        crumbs = crumbs.join(" / "),
        title = esc(page.title),
        body = page.body,
    )
}

/// The sign-in page: an access key pair, and where to go next. `error` says why the last
/// attempt was refused.
pub fn signin(error: Option<&str>, next: &str) -> String {
    let error = error
        .map(|e| {
            format!(
                "<div class=\"notice\" role=\"alert\" id=\"signin-error\">{}</div>",
                esc(e)
            )
        })
        .unwrap_or_default();
    format!(
        "{head}<body><header><span class=\"brand\">Flotilla</span></header><main><div class=\"signin\"><h1>Sign in</h1><p class=\"muted\">Use an access key pair of this server (the one the aws CLI signs with).</p>{error}<form method=\"post\" action=\"/console/signin\"><input type=\"hidden\" name=\"next\" value=\"{next}\"><label>Access key ID<input name=\"accessKeyId\" id=\"accessKeyId\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required></label><label>Secret access key<input name=\"secretAccessKey\" id=\"secretAccessKey\" type=\"password\" autocomplete=\"current-password\" required></label><button type=\"submit\" id=\"signin\">Sign in</button></form></div></main></body></html>",
        head = head("Sign in"),
        next = esc(next),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn viewer() -> Viewer {
        Viewer {
            access_key_id: "AKID<x>".into(),
            csrf: "tok\"en".into(),
        }
    }

    #[test]
    fn a_page_escapes_its_title_crumbs_and_notice() {
        let html = page(
            &viewer(),
            Page {
                title: "<svc>",
                crumbs: vec![("/console/clusters".into(), "a&b".into())],
                body: "<p>body</p>".into(),
                notice: Some(Notice::Error {
                    code: "InvalidParameterException".into(),
                    message: "<img src=x>".into(),
                }),
            },
        );
        assert!(html.contains("<h1>&lt;svc&gt;</h1>"));
        assert!(html.contains(">a&amp;b</a>"));
        assert!(html.contains("&lt;img src=x&gt;"));
        assert!(!html.contains("<img"));
        assert!(html.contains("AKID&lt;x&gt;"));
        assert!(html.contains("value=\"tok&quot;en\""));
        assert!(html.contains("<p>body</p>"));
        assert!(html.contains("name=\"viewport\""));
    }

    #[test]
    fn the_signin_page_keeps_next_and_shows_the_refusal() {
        let html = signin(Some("The key <pair> was refused."), "/console/x\"><script>");
        assert!(html.contains("The key &lt;pair&gt; was refused."));
        assert!(html.contains("value=\"/console/x&quot;&gt;&lt;script&gt;\""));
        assert!(html.contains("type=\"password\""));
        assert!(!signin(None, "/").contains("role=\"alert\""));
    }
}
