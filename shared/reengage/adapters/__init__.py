"""The ports on AWS (DynamoDB, SQS, SES, Secrets Manager, SSM) and OpenAI: one module per store or concern."""
