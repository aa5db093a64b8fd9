"""The two faces behind one interface, so each scenario is written once and run on both.

Outcomes use REST's vocabulary: a status code, and the profile with `avatar` None when
there is none (REST's "" and GraphQL's null both become None).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from starlette.testclient import TestClient

from rest_compat.translator import STATUS_BY_CODE

PROFILE_FIELDS = "username email firstname lastname avatar"
UPLOAD = "mutation($f: Upload!) {{ r: updateAvatar(file: $f) {{ {fields} }} }}"


@dataclass
class Outcome:
    status: int
    profile: dict[str, Any] | None = None
    message: str = ""
    retry_after: int | None = None
    # The error's code where REST's body carries one (TOTP_REQUIRED); GraphQL's always.
    code: str | None = None
    # A result other than a profile or a message, in REST's shape (snake_case keys).
    data: Any = None


def send_json(client: TestClient, method: str, url: str, body: object) -> Any:
    # json.dumps escapes lone surrogates (\\ud800) as real clients may; httpx's json= cannot.
    headers = {"content-type": "application/json"}
    return client.request(method, url, content=json.dumps(body), headers=headers)


class Face:
    name = ""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def beside(self, user_agent: str) -> Face:
        """Another browser on the same service: its own cookies, its own user agent."""
        other = TestClient(
            self.client.app, headers={"user-agent": user_agent}, client=("127.0.0.1", 50001)
        )
        # Requests run on the first client's event loop, where the app's lifespan runs and
        # its connection pool lives (asyncpg's connections belong to one loop).
        other.portal = self.client.portal
        return type(self)(other)

    def signup(self, login: str, password: str, email: str) -> Outcome:
        raise NotImplementedError

    def login(self, login: str, password: str, otp: str | None = None) -> Outcome:
        raise NotImplementedError

    def logout(self) -> Outcome:
        raise NotImplementedError

    def profile(self) -> Outcome:
        raise NotImplementedError

    def update_profile(self, **fields: Any) -> Outcome:
        raise NotImplementedError

    def delete_profile(self) -> Outcome:
        raise NotImplementedError

    def change_password(self, old: str, new: str) -> Outcome:
        raise NotImplementedError

    def upload_avatar(
        self, data: bytes, filename: str = "a.png", mime: str = "image/png"
    ) -> Outcome:
        raise NotImplementedError

    def verify_email(self, token: str) -> Outcome:
        raise NotImplementedError

    def send_verification(self) -> Outcome:
        raise NotImplementedError

    def request_password_reset(self, login: str) -> Outcome:
        raise NotImplementedError

    def reset_password(self, token: str, new_password: str) -> Outcome:
        raise NotImplementedError

    def account(self) -> Outcome:
        """`data` is GET /account's object."""
        raise NotImplementedError

    def sessions(self) -> Outcome:
        raise NotImplementedError

    def revoke_session(self, session_id: str) -> Outcome:
        raise NotImplementedError

    def revoke_other_sessions(self) -> Outcome:
        """`data` is `{"ended": n}`."""
        raise NotImplementedError

    def security_events(self, limit: int | None = None) -> Outcome:
        raise NotImplementedError

    def start_totp_setup(self) -> Outcome:
        """`data` is `{"secret", "otpauth_url"}`."""
        raise NotImplementedError

    def confirm_totp(self, code: str) -> Outcome:
        """`data` is `{"recovery_codes": [...]}`."""
        raise NotImplementedError

    def disable_totp(self, password: str) -> Outcome:
        raise NotImplementedError


class Rest(Face):
    name = "rest"

    def signup(self, login: str, password: str, email: str) -> Outcome:
        body = {"login": login, "password": password, "email": email}
        return self._outcome(send_json(self.client, "POST", "/signup", body))

    def login(self, login: str, password: str, otp: str | None = None) -> Outcome:
        body = {"login": login, "password": password}
        if otp is not None:
            body["otp"] = otp
        return self._outcome(send_json(self.client, "POST", "/login", body))

    def logout(self) -> Outcome:
        return self._outcome(self.client.get("/logout"))

    def profile(self) -> Outcome:
        return self._outcome(self.client.get("/profile"))

    def update_profile(self, **fields: Any) -> Outcome:
        return self._outcome(send_json(self.client, "PUT", "/profile", fields))

    def delete_profile(self) -> Outcome:
        return self._outcome(self.client.delete("/profile"))

    def change_password(self, old: str, new: str) -> Outcome:
        body = {"old_password": old, "new_password": new}
        return self._outcome(send_json(self.client, "PUT", "/password", body))

    def upload_avatar(
        self, data: bytes, filename: str = "a.png", mime: str = "image/png"
    ) -> Outcome:
        return self._outcome(self.client.put("/avatar", files={"avatar": (filename, data, mime)}))

    def verify_email(self, token: str) -> Outcome:
        return self._outcome(send_json(self.client, "POST", "/email/verify", {"token": token}))

    def send_verification(self) -> Outcome:
        return self._outcome(self.client.post("/email/verification"))

    def request_password_reset(self, login: str) -> Outcome:
        return self._outcome(send_json(self.client, "POST", "/password/forgot", {"login": login}))

    def reset_password(self, token: str, new_password: str) -> Outcome:
        body = {"token": token, "new_password": new_password}
        return self._outcome(send_json(self.client, "POST", "/password/reset", body))

    def account(self) -> Outcome:
        return self._outcome(self.client.get("/account"))

    def sessions(self) -> Outcome:
        return self._outcome(self.client.get("/sessions"))

    def revoke_session(self, session_id: str) -> Outcome:
        return self._outcome(self.client.delete(f"/sessions/{session_id}"))

    def revoke_other_sessions(self) -> Outcome:
        return self._outcome(self.client.delete("/sessions"))

    def security_events(self, limit: int | None = None) -> Outcome:
        params = {} if limit is None else {"limit": str(limit)}
        return self._outcome(self.client.get("/security-events", params=params))

    def start_totp_setup(self) -> Outcome:
        return self._outcome(self.client.post("/totp/setup"))

    def confirm_totp(self, code: str) -> Outcome:
        return self._outcome(send_json(self.client, "POST", "/totp/confirm", {"code": code}))

    def disable_totp(self, password: str) -> Outcome:
        body = {"password": password}
        return self._outcome(send_json(self.client, "POST", "/totp/disable", body))

    @staticmethod
    def _outcome(response: Any) -> Outcome:
        body = response.json()
        retry = response.headers.get("retry-after")
        if not isinstance(body, dict):
            return Outcome(response.status_code, data=body)
        outcome = Outcome(
            response.status_code,
            message=body.get("message", ""),
            retry_after=int(retry) if retry else None,
            code=body.get("code"),
        )
        if "username" in body:
            outcome.profile = {**body, "avatar": body["avatar"] or None}
        elif set(body) - {"message", "code"}:
            outcome.data = {key: value for key, value in body.items() if key != "message"}
        return outcome


class GraphQL(Face):
    name = "graphql"

    def signup(self, login: str, password: str, email: str) -> Outcome:
        return self._run(
            f"mutation($i: SignupInput!) {{ r: signup(input: $i) {{ {PROFILE_FIELDS} }} }}",
            {"i": {"login": login, "password": password, "email": email}},
        )

    def login(self, login: str, password: str, otp: str | None = None) -> Outcome:
        fields = {"login": login, "password": password}
        if otp is not None:
            fields["otp"] = otp
        return self._run(
            f"mutation($i: LoginInput!) {{ r: login(input: $i) {{ {PROFILE_FIELDS} }} }}",
            {"i": fields},
        )

    def logout(self) -> Outcome:
        return self._run("mutation { r: logout }")

    def profile(self) -> Outcome:
        outcome = self._run(f"{{ r: me {{ {PROFILE_FIELDS} }} }}")
        if outcome.status == 200 and outcome.profile is None:
            return Outcome(403, message="me is null")
        return outcome

    def update_profile(self, **fields: Any) -> Outcome:
        return self._run(
            f"mutation($i: ProfileInput!) {{ r: updateProfile(input: $i) {{ {PROFILE_FIELDS} }} }}",
            {"i": fields},
        )

    def delete_profile(self) -> Outcome:
        return self._run("mutation { r: deleteProfile }")

    def change_password(self, old: str, new: str) -> Outcome:
        return self._run(
            "mutation($i: PasswordInput!) { r: changePassword(input: $i) }",
            {"i": {"oldPassword": old, "newPassword": new}},
        )

    def upload_avatar(
        self, data: bytes, filename: str = "a.png", mime: str = "image/png"
    ) -> Outcome:
        operations = {
            "query": UPLOAD.format(fields=PROFILE_FIELDS),
            "variables": {"f": None},
        }
        response = self.client.post(
            "/graphql",
            data={"operations": json.dumps(operations), "map": json.dumps({"0": ["variables.f"]})},
            files={"0": (filename, data, mime)},
            headers={"apollo-require-preflight": "true"},
        )
        return self._outcome(response)

    def verify_email(self, token: str) -> Outcome:
        return self._run("mutation($t: String!) { r: verifyEmail(token: $t) }", {"t": token})

    def send_verification(self) -> Outcome:
        return self._run("mutation { r: sendVerificationEmail }")

    def request_password_reset(self, login: str) -> Outcome:
        return self._run(
            "mutation($l: String!) { r: requestPasswordReset(login: $l) }", {"l": login}
        )

    def reset_password(self, token: str, new_password: str) -> Outcome:
        return self._run(
            "mutation($i: ResetPasswordInput!) { r: resetPassword(input: $i) }",
            {"i": {"token": token, "newPassword": new_password}},
        )

    def account(self) -> Outcome:
        outcome = self._run(
            "{ r: me { email email_verified: emailVerified totp_enabled: totpEnabled"
            " created_at: createdAt } }"
        )
        if outcome.status == 200 and outcome.data is None:
            return Outcome(403, message="me is null")
        return outcome

    def sessions(self) -> Outcome:
        return self._run(
            "{ r: sessions { id created_at: createdAt last_seen_at: lastSeenAt"
            " expires_at: expiresAt user_agent: userAgent ip_address: ipAddress current } }"
        )

    def revoke_session(self, session_id: str) -> Outcome:
        return self._run("mutation($id: ID!) { r: revokeSession(id: $id) }", {"id": session_id})

    def revoke_other_sessions(self) -> Outcome:
        outcome = self._run("mutation { r: revokeOtherSessions }")
        if outcome.status == 200:
            outcome.data = {"ended": outcome.data}
        return outcome

    def security_events(self, limit: int | None = None) -> Outcome:
        fields = "kind at ip_address: ipAddress user_agent: userAgent"
        if limit is None:
            return self._run(f"{{ r: securityEvents {{ {fields} }} }}")
        return self._run(
            f"query($n: Int!) {{ r: securityEvents(limit: $n) {{ {fields} }} }}", {"n": limit}
        )

    def start_totp_setup(self) -> Outcome:
        return self._run("mutation { r: startTotpSetup { secret otpauth_url: otpauthUrl } }")

    def confirm_totp(self, code: str) -> Outcome:
        outcome = self._run("mutation($c: String!) { r: confirmTotp(code: $c) }", {"c": code})
        if outcome.status == 200:
            outcome.data = {"recovery_codes": outcome.data}
        return outcome

    def disable_totp(self, password: str) -> Outcome:
        return self._run("mutation($p: String!) { r: disableTotp(password: $p) }", {"p": password})

    def _run(self, query: str, variables: dict[str, Any] | None = None) -> Outcome:
        response = send_json(
            self.client, "POST", "/graphql", {"query": query, "variables": variables}
        )
        return self._outcome(response)

    @staticmethod
    def _outcome(response: Any) -> Outcome:
        body = response.json()
        if response.status_code != 200:
            # Refused before GraphQL ran (transport rules, body limits).
            message = body["errors"][0]["message"] if "errors" in body else body["message"]
            return Outcome(response.status_code, message=message)
        if body.get("errors"):
            error = body["errors"][0]
            code = error["extensions"]["code"]
            return Outcome(
                STATUS_BY_CODE.get(code, 500),
                message=error["message"],
                retry_after=error["extensions"].get("retryAfter"),
                code=code,
            )
        value = body["data"]["r"]
        if isinstance(value, dict) and "username" in value:
            return Outcome(200, profile=value)
        return Outcome(200, message=str(value), data=value)


FACES: dict[str, type[Face]] = {"rest": Rest, "graphql": GraphQL}
