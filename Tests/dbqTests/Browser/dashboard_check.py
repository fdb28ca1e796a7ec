#!/usr/bin/env python3
"""Drives the dbq dashboard in a real headless Chromium (Selenium, chromium-driver).

Run by DashboardBrowserTests with a dashboard already serving: every page loads without
console errors, a job pushed while a page is open appears without a reload, a dead job's
retry is refused before sign-in and works after it, the action is logged with who did it,
cross-site and wrong-token requests are refused, and no secret reaches a page.
Prints one line per check; exits 1 if any check failed, 2 if the browser cannot start.
"""
import argparse
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

parser = argparse.ArgumentParser()
parser.add_argument("--url", required=True)
parser.add_argument("--token", required=True)
parser.add_argument("--queue", required=True)
parser.add_argument("--dead-id", required=True)
parser.add_argument("--secret", required=True, help="a password in the dead job's error: must never be shown")
parser.add_argument("--dbq", required=True, help="the dbq binary, to push a job while a page is open")
args = parser.parse_args()

failures = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else ": " + detail), flush=True)
    if not ok:
        failures.append(name)


def wait_for(predicate, timeout=30.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            if predicate():
                return True
        except Exception:
            pass
        time.sleep(0.2)
    return False


options = webdriver.ChromeOptions()
for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1000"]:
    options.add_argument(flag)
options.binary_location = "/usr/bin/chromium"
options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
try:
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
except Exception as error:  # the browser is part of the test: say how to get it
    print("FAIL cannot start headless chromium (" + str(error).splitlines()[0] + "); run deploy/local/install.sh", flush=True)
    sys.exit(2)


# On a loaded machine a page can take seconds: every element is waited for (until it can
# be clicked or typed into), never assumed to be there the moment a page is asked for.
def element(by, value, timeout=30):
    return WebDriverWait(driver, timeout).until(expected_conditions.element_to_be_clickable((by, value)))


def console_errors():
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] in ("SEVERE", "ERROR")]


try:
    job_path = "/jobs/" + urllib.parse.quote(args.queue) + "/" + urllib.parse.quote(args.dead_id)
    pages = ["/", "/jobs", "/jobs?queue=" + args.queue + "&state=dead", "/scheduled", "/dead", "/schedules", "/workers",
             "/artefacts", "/audit", "/login", job_path]
    for path in pages:
        driver.get(args.url + path)
        heading = driver.find_element(By.TAG_NAME, "h1").text
        errors = console_errors()
        check("page %s loads (%s) without console errors" % (path, heading), heading != "" and not errors, json.dumps(errors))
        check("page %s shows no secret" % path, args.secret not in driver.page_source, "the password appears in the page")

    driver.get(args.url + "/artefacts")
    rows = [row.text for row in driver.find_elements(By.CSS_SELECTOR, "main tbody tr")]
    check("the artefacts page lists the verified backup", any(r.startswith("backup") and "passed" in r for r in rows), json.dumps(rows))

    # A job pushed while the jobs page is open appears without a reload.
    driver.get(args.url + "/jobs?queue=" + urllib.parse.quote(args.queue))
    marker = driver.execute_script("window.__dbqMarker = 'same-document'; return window.__dbqMarker;")
    pushed = subprocess.run([args.dbq, "push", "noop", "--queue", args.queue, "--in", "1h"], capture_output=True, text=True, timeout=60)
    new_id = pushed.stdout.strip().split()[-1] if pushed.returncode == 0 and pushed.stdout.strip() else ""
    check("dbq push printed the new job's id", new_id != "", pushed.stderr)
    appeared = wait_for(lambda: new_id[:13] in driver.find_element(By.TAG_NAME, "main").text, timeout=30)
    same_document = driver.execute_script("return window.__dbqMarker;") == marker
    check("the pushed job appears on the open page by the live update (no reload)", appeared and same_document,
          "appeared=%s same_document=%s" % (appeared, same_document))
    errors = console_errors()
    check("the live update raised no console error", not errors, json.dumps(errors))

    # Before sign-in: the retry button is there, and pressing it is refused; the job stays dead.
    driver.get(args.url + job_path)
    element(By.XPATH, "//form[@action='/actions/retry']//button").click()
    wait_for(lambda: driver.find_element(By.TAG_NAME, "h1").text == "Refused")
    check("retry without signing in is refused", driver.find_element(By.TAG_NAME, "h1").text == "Refused"
          and "sign in" in driver.find_element(By.TAG_NAME, "main").text, driver.find_element(By.TAG_NAME, "main").text[:300])
    # The refusal's 401 is the one console entry it may leave.
    errors = [e for e in console_errors() if "status of 401" not in e]
    check("the refused retry left no other console error", not errors, json.dumps(errors))
    driver.get(args.url + job_path)
    check("the refused retry changed nothing (the job is still dead)", "dead" in driver.find_element(By.CSS_SELECTOR, "main p .state").text)

    # A wrong token is refused at sign-in.
    driver.get(args.url + "/login")
    element(By.NAME, "name").send_keys("mallory")
    element(By.NAME, "token").send_keys("not-the-token")
    element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: "wrong" in driver.find_element(By.TAG_NAME, "main").text)
    check("sign-in with a wrong token is refused", "The token is wrong" in driver.find_element(By.TAG_NAME, "main").text)
    errors = [e for e in console_errors() if "status of 401" not in e]
    check("the refused sign-in left no other console error", not errors, json.dumps(errors))

    # Sign in, retry: the dead job goes back to pending.
    driver.get(args.url + "/login")
    element(By.NAME, "name").send_keys("alice")
    element(By.NAME, "token").send_keys(args.token)
    element(By.CSS_SELECTOR, "form.login button").click()
    wait_for(lambda: "signed in as" in driver.find_element(By.TAG_NAME, "header").text)
    check("sign-in with the token works", "alice" in driver.find_element(By.TAG_NAME, "header").text)
    driver.get(args.url + job_path)
    element(By.XPATH, "//form[@action='/actions/retry']//button").click()
    wait_for(lambda: "pending again" in driver.find_element(By.TAG_NAME, "main").text)
    state = driver.find_element(By.CSS_SELECTOR, "main p .state").text
    check("the dead job retried from its page is pending", state == "pending", "state: " + state)
    errors = console_errors()
    check("no console error after the action", not errors, json.dumps(errors))

    driver.get(args.url + "/audit")
    audit = driver.find_element(By.TAG_NAME, "main").text
    check("the action is logged with who did it", "alice" in audit and "retry" in audit and args.dead_id in audit, audit[:400])

    # Requests a browser on another site could make, and scripts with a wrong token.
    session = next((c["value"] for c in driver.get_cookies() if c["name"] == "dbq_session"), "")
    check("the session cookie is HttpOnly and SameSite=Strict",
          any(c["name"] == "dbq_session" and c.get("httpOnly") and c.get("sameSite") == "Strict" for c in driver.get_cookies()))

    def post(path, fields, headers):
        request = urllib.request.Request(args.url + path, data=urllib.parse.urlencode(fields).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request) as response:
                return response.status
        except urllib.error.HTTPError as error:
            return error.code

    fields = {"queue": args.queue, "id": args.dead_id}
    status = post("/actions/cancel", fields, {"Cookie": "dbq_session=" + session, "Origin": "http://evil.example"})
    check("a cross-site POST with the session cookie is refused", status == 403, "status %d" % status)
    status = post("/actions/cancel", fields, {"Cookie": "dbq_session=" + session})
    check("a POST with the cookie but without the form's CSRF value is refused", status == 403, "status %d" % status)
    status = post("/actions/cancel", fields, {"Authorization": "Bearer wrong"})
    check("a script with a wrong bearer token is refused", status == 401, "status %d" % status)
    status = post("/actions/cancel", fields, {})
    check("an action with no credentials is refused", status == 401, "status %d" % status)
    driver.get(args.url + job_path)
    check("after the refused requests the job is still pending", driver.find_element(By.CSS_SELECTOR, "main p .state").text == "pending")
finally:
    driver.quit()

print("%d check(s) failed" % len(failures) if failures else "all checks passed", flush=True)
sys.exit(1 if failures else 0)
