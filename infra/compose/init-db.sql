CREATE DATABASE prefect OWNER sentinance;
CREATE DATABASE mlflow OWNER sentinance;
