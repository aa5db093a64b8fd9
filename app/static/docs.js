// Starts Swagger UI on /docs for the service's own OpenAPI document. Loaded as a file
// (not inline) so the page's Content-Security-Policy can stay at script-src 'self'.
"use strict";

window.addEventListener("DOMContentLoaded", function () {
  SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    // Swagger UI would otherwise send the document to a public validator for a badge.
    validatorUrl: null,
    deepLinking: true,
  });
});
