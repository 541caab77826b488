// GraphiQL over /graphql of this gateway (a bearer token, when set on the dashboard, is sent along).
"use strict";
(function () {
  const token = sessionStorage.getItem("sparkhu.token");
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const fetcher = GraphiQL.createFetcher({ url: `${location.origin}/graphql`, headers });
  const root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(React.createElement(GraphiQL, { fetcher, defaultEditorToolsVisibility: true }));
})();
