/// The API contract, docs/openapi.yaml (OpenAPI 3.1), as the JSON every process serves at
/// `/api/v1/openapi.json`. It is embedded when the binary is built, so a copied binary serves
/// the document it was built with.
public enum APIDocument {
    public static var json: String { EmbeddedAPIDocument.json }
}
