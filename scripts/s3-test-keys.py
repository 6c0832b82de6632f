"""Creates a user allowed every S3 action, and an access key for it, on a moto server whose first
three calls are unauthenticated (INITIAL_NO_AUTH_ACTION_COUNT=3): every later request must carry
a valid SigV4 signature from that key. Prints the key id and the secret."""
import json, re, sys, urllib.parse, urllib.request
endpoint = sys.argv[1]
def iam(params):
    data = urllib.parse.urlencode({**params, "Version": "2010-05-08"}).encode()
    request = urllib.request.Request(endpoint + "/", data=data, headers={
        "Authorization": "AWS4-HMAC-SHA256 Credential=setup/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
        "Content-Type": "application/x-www-form-urlencoded"})
    return urllib.request.urlopen(request, timeout=10).read().decode()
iam({"Action": "CreateUser", "UserName": "circle"})
policy = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}
iam({"Action": "PutUserPolicy", "UserName": "circle", "PolicyName": "vault", "PolicyDocument": json.dumps(policy)})
answer = iam({"Action": "CreateAccessKey", "UserName": "circle"})
print(re.search(r"<AccessKeyId>(.*?)</AccessKeyId>", answer).group(1), re.search(r"<SecretAccessKey>(.*?)</SecretAccessKey>", answer).group(1))
