"""Creates an IAM user with an access key and a bucket on a fresh moto server.

Prints "ACCESS_KEY SECRET" on one line. moto's first unauthenticated calls are spent
here (create user, attach policy, create key); every later call must be signed.
"""
import sys

import boto3

endpoint, bucket = sys.argv[1], sys.argv[2]
iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                   aws_access_key_id="bootstrap", aws_secret_access_key="bootstrap")
iam.create_user(UserName="dbq")
iam.put_user_policy(UserName="dbq", PolicyName="all",
                    PolicyDocument='{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}')
key = iam.create_access_key(UserName="dbq")["AccessKey"]
s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                  aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"])
s3.create_bucket(Bucket=bucket)
print(key["AccessKeyId"], key["SecretAccessKey"])
