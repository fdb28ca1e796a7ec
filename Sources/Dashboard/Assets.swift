/// The dashboard's stylesheet and script, embedded in the binary: nothing is fetched from
/// elsewhere, and the Content-Security-Policy allows only these.
enum Assets {
    static let css = """
        :root { --fg: #1d232a; --muted: #66707a; --line: #dde1e5; --bg: #f7f8fa; --accent: #2457c5; --bad: #b3261e; --ok: #1e7d32; --warn: #a35f00; }
        * { box-sizing: border-box; }
        body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); background: var(--bg); }
        header { display: flex; gap: 1.5rem; align-items: center; padding: .6rem 1.2rem; background: #fff; border-bottom: 1px solid var(--line); flex-wrap: wrap; }
        header nav { display: flex; gap: .9rem; flex-wrap: wrap; }
        header nav a { color: var(--muted); text-decoration: none; }
        header nav a[aria-current] { color: var(--fg); font-weight: 600; border-bottom: 2px solid var(--accent); }
        .who { margin-left: auto; display: flex; gap: .6rem; align-items: center; }
        main { padding: 1rem 1.2rem 3rem; max-width: 1400px; }
        footer { position: fixed; bottom: 0; left: 0; right: 0; padding: .3rem 1.2rem; font-size: 12px; color: var(--muted); background: #fff; border-top: 1px solid var(--line); }
        h1 { font-size: 1.35rem; margin: .4rem 0 1rem; }
        h2 { font-size: 1.05rem; margin: 1.2rem 0 .5rem; }
        table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
        th, td { text-align: left; padding: .35rem .55rem; border-bottom: 1px solid var(--line); vertical-align: top; }
        th { font-weight: 600; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .03em; }
        a { color: var(--accent); }
        .mono, pre, code { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: 12.5px; }
        pre { background: #fff; border: 1px solid var(--line); padding: .7rem; overflow: auto; max-height: 28rem; }
        pre.error { border-color: var(--bad); white-space: pre-wrap; }
        .muted { color: var(--muted); }
        .state { display: inline-block; padding: 0 .45rem; border-radius: 9px; font-size: 12px; background: #e8ebef; }
        .state-succeeded { background: #dff1e3; color: var(--ok); }
        .state-dead { background: #fbe3e1; color: var(--bad); }
        .state-running { background: #e2ebfb; color: var(--accent); }
        .state-scheduled, .state-pending { background: #fff1d6; color: var(--warn); }
        .cards { display: flex; gap: .8rem; flex-wrap: wrap; margin-top: 1.2rem; }
        .card { display: flex; flex-direction: column; min-width: 13rem; padding: .7rem .9rem; background: #fff; border: 1px solid var(--line); text-decoration: none; color: var(--fg); }
        .card.alert { border-color: var(--bad); }
        .card .label { font-size: 12px; color: var(--muted); }
        .card .value { font-size: 1.4rem; font-weight: 600; }
        .card .detail { font-size: 12px; color: var(--muted); }
        .spark rect { fill: var(--accent); }
        form.inline { display: inline; margin: 0 .3rem 0 0; }
        button { font: inherit; padding: .2rem .7rem; border: 1px solid var(--line); background: #fff; cursor: pointer; border-radius: 3px; }
        button.danger { color: var(--bad); border-color: #e6b4b0; }
        button.link { border: 0; background: none; color: var(--accent); padding: 0; }
        .filters, .login { display: flex; gap: .8rem; align-items: end; margin-bottom: 1rem; flex-wrap: wrap; }
        .login { flex-direction: column; align-items: start; max-width: 22rem; }
        .login label { display: flex; flex-direction: column; width: 100%; }
        .flash { padding: .5rem .8rem; background: #e2ebfb; border: 1px solid #b6c8f0; }
        .flash.error { background: #fbe3e1; border-color: #e6b4b0; }
        dl.timeline { display: grid; grid-template-columns: max-content auto; gap: .2rem 1rem; }
        dl.timeline dt { color: var(--muted); }
        dl.timeline dd { margin: 0; }
        progress { width: 7rem; vertical-align: middle; }
        """

    static let favicon = """
        <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16"><rect width="16" height="16" rx="3" fill="#2457c5"/><path d="M4 4h3a4 4 0 0 1 0 8H4z" fill="#fff"/></svg>
        """

    static let js = """
        'use strict';
        (function () {
          // Confirmation for destructive actions (forms with data-confirm).
          document.addEventListener('submit', function (event) {
            var message = event.target.getAttribute('data-confirm');
            if (message && !window.confirm(message)) { event.preventDefault(); }
          });
          // Live updates: the main element is fetched again every 3 s while the page is
          // visible and nobody is typing into a filter.
          function refresh() {
            var main = document.querySelector('main[data-live]');
            if (!main || document.visibilityState !== 'visible') { return; }
            var active = document.activeElement;
            if (active && (active.tagName === 'INPUT' || active.tagName === 'SELECT')) { return; }
            var stamp = document.getElementById('updated');
            fetch(window.location.href, { headers: { 'X-DBQ-Fragment': '1' }, credentials: 'same-origin' })
              .then(function (response) {
                if (!response.ok) { throw new Error('HTTP ' + response.status); }
                return response.text();
              })
              .then(function (html) {
                main.innerHTML = html;
                if (stamp) { stamp.textContent = new Date().toISOString().replace('T', ' ').slice(0, 19) + ' UTC'; }
              })
              .catch(function (error) {
                if (stamp) { stamp.textContent = 'not updated (' + error.message + '): is the dashboard running?'; }
              });
          }
          window.setInterval(refresh, 3000);
        }());
        """
}
