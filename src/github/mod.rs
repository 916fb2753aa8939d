//! GitHub's REST API, authenticated with the PAT, with its rate-limit budget.
