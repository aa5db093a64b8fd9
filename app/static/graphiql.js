// Starts GraphiQL on /graphql. Loaded as a file (not inline) so the page's
// Content-Security-Policy can stay at script-src 'self'.
"use strict";

(function () {
  // The page is served at the GraphQL endpoint itself; queries go back to it, with the
  // session cookie, so GraphiQL acts as the signed-in user (login mutations set it).
  const url = window.location.pathname;
  const fetcher = GraphiQL.createFetcher({
    url: url,
    // The service answers no @defer/@stream, so plain JSON requests suffice.
    enableIncrementalDelivery: false,
    fetch: function (input, init) {
      return window.fetch(input, Object.assign({}, init, { credentials: "same-origin" }));
    },
  });
  const defaultQuery = [
    "# Accounts API: sign up or log in with a mutation (it sets",
    "# the session cookie), then ask who you are. The Docs pane",
    "# lists every query and mutation.",
    "",
    "{",
    "  me {",
    "    username",
    "    email",
    "  }",
    "}",
    "",
  ].join("\n");
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: defaultQuery,
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
    }),
  );
})();
