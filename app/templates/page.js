"use strict";
(function () {
  var form = document.getElementById("action");
  var outcome = document.getElementById("outcome");
  var token = new URLSearchParams(window.location.search).get("token") || "";
  var endpoint = document.body.dataset.endpoint;
  function show(text, isError) {
    outcome.textContent = text;
    outcome.className = isError ? "error" : "";
    if (isError) { outcome.setAttribute("role", "alert"); }
  }
  function disable() {
    Array.prototype.forEach.call(form.elements, function (element) { element.disabled = true; });
  }
  if (!token) {
    show("This link has no token. Open the link from the email again, or copy all of it.", true);
    disable();
    return;
  }
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { token: token };
    var password = document.getElementById("new-password");
    if (password) {
      if (password.value !== document.getElementById("repeat-password").value) {
        show("The two passwords are not the same.", true);
        return;
      }
      body.new_password = password.value;
    }
    var button = form.querySelector("button");
    button.disabled = true;
    show("Working…", false);
    fetch(endpoint, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
      credentials: "same-origin"
    }).then(function (response) {
      return response.json().then(function (data) {
        if (response.ok) {
          show(data.message + ".", false);
          disable();
        } else {
          show("That did not work: " + (data.message || "error " + response.status) + ".", true);
          button.disabled = false;
        }
      });
    }).catch(function () {
      show("The service could not be reached. Check your connection and try again.", true);
      button.disabled = false;
    });
  });
})();
