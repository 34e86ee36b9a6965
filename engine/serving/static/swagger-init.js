// Starts Swagger UI on the page's #swagger-ui element (a file, not an inline script, so the page
// needs no 'unsafe-inline'); validatorUrl: null keeps the UI from calling validator.swagger.io.
window.addEventListener("load", function () {
  var element = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: element.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    validatorUrl: null,
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
});
