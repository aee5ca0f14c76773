"""Signs in as the fuzzing admin and runs one device login to its end, the
way a person and the CLI would, over HTTP. Prints the API token: it carries
every scope, so the fuzzer reaches the Bearer routes past their checks.

usage: seed.py BASE_URL EMAIL PASSWORD
"""

import http.cookiejar
import json
import re
import sys
import urllib.parse
import urllib.request


def main() -> None:
    base, email, password = sys.argv[1:4]
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    page = browser.open(f"{base}/login").read().decode()
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page)
    if not csrf:
        sys.exit("seed: the sign-in page has no CSRF token")
    form = urllib.parse.urlencode(
        {"csrf_token": csrf.group(1), "email": email, "password": password}
    ).encode()
    browser.open(urllib.request.Request(f"{base}/login", data=form, headers={"Origin": base}))

    scopes = json.load(urllib.request.urlopen(f"{base}/.well-known/oauth-authorization-server"))[
        "scopes_supported"
    ]
    started = post(f"{base}/api/v1/cli/auth/device/start", {"tokenName": "fuzz", "scopes": scopes})
    post(
        f"{base}/api/v1/cli/auth/device/complete",
        {"userCode": started["userCode"], "decision": "approve"},
        opener=browser,
        origin=base,
    )
    polled = post(f"{base}/api/v1/cli/auth/device/poll", {"deviceCode": started["deviceCode"]})
    if polled.get("status") != "approved":
        sys.exit(f"seed: the login was not approved: {polled.get('status')}")
    print(polled["token"])


def post(url, body, opener=None, origin=None):
    headers = {"Content-Type": "application/json"}
    if origin:
        headers["Origin"] = origin
    req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers)
    with (opener or urllib.request.build_opener()).open(req) as res:
        return json.load(res)


if __name__ == "__main__":
    main()
