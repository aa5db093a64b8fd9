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
ACCOUNT_KEYS = {
    "email": "email",
    "emailVerified": "email_verified",
    "totpEnabled": "totp_enabled",
    "createdAt": "created_at",
}
UPLOAD = "mutation($f: Upload!) {{ r: updateAvatar(file: $f) {{ {fields} }} }}"


@dataclass
class Outcome:
    status: int
    profile: dict[str, Any] | None = None
    message: str = ""
    retry_after: int | None = None
    # GET /account's object; GraphQL's `me { email emailVerified totpEnabled createdAt }`
    # under the same keys.
    account: dict[str, Any] | None = None


def send_json(client: TestClient, method: str, url: str, body: object) -> Any:
    # json.dumps escapes lone surrogates (\\ud800) as real clients may; httpx's json= cannot.
    headers = {"content-type": "application/json"}
    return client.request(method, url, content=json.dumps(body), headers=headers)


class Face:
    name = ""

    def __init__(self, client: TestClient) -> None:
        self.client = client

    def signup(self, login: str, password: str, email: str) -> Outcome:
        raise NotImplementedError

    def login(self, login: str, password: str) -> Outcome:
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
        raise NotImplementedError


class Rest(Face):
    name = "rest"

    def signup(self, login: str, password: str, email: str) -> Outcome:
        body = {"login": login, "password": password, "email": email}
        return self._outcome(send_json(self.client, "POST", "/signup", body))

    def login(self, login: str, password: str) -> Outcome:
        body = {"login": login, "password": password}
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
        response = self.client.get("/account")
        if response.status_code != 200:
            return self._outcome(response)
        return Outcome(200, account=response.json())

    @staticmethod
    def _outcome(response: Any) -> Outcome:
        body = response.json()
        retry = response.headers.get("retry-after")
        outcome = Outcome(
            response.status_code,
            message=body.get("message", ""),
            retry_after=int(retry) if retry else None,
        )
        if "username" in body:
            outcome.profile = {**body, "avatar": body["avatar"] or None}
        return outcome


class GraphQL(Face):
    name = "graphql"

    def signup(self, login: str, password: str, email: str) -> Outcome:
        return self._run(
            f"mutation($i: SignupInput!) {{ r: signup(input: $i) {{ {PROFILE_FIELDS} }} }}",
            {"i": {"login": login, "password": password, "email": email}},
        )

    def login(self, login: str, password: str) -> Outcome:
        return self._run(
            f"mutation($i: LoginInput!) {{ r: login(input: $i) {{ {PROFILE_FIELDS} }} }}",
            {"i": {"login": login, "password": password}},
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
        outcome = self._run(f"{{ r: me {{ {' '.join(ACCOUNT_KEYS)} }} }}")
        if outcome.status != 200:
            return outcome
        if outcome.profile is None:
            return Outcome(403, message="me is null")
        return Outcome(200, account={ACCOUNT_KEYS[k]: v for k, v in outcome.profile.items()})

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
            )
        value = body["data"]["r"]
        if isinstance(value, dict):
            return Outcome(200, profile=value)
        return Outcome(200, message=str(value))


FACES: dict[str, type[Face]] = {"rest": Rest, "graphql": GraphQL}
