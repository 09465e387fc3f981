// Tests read JSON bodies loosely, as the customers' sample in API.md does (`data.ok`, `data.id`).
export {};

declare global {
  interface Response {
    json(): Promise<any>;
  }
}
